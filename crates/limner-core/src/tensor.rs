//! Host data ↔ device tensors.

use burn::tensor::{Device, Tensor, TensorData};

/// Builds a device tensor from host data (`data.len()` must be the product of `shape`).
pub fn tensor_from<const D: usize>(data: Vec<f32>, shape: [usize; D], device: &Device) -> Tensor<D> {
    Tensor::from_data(TensorData::new(data, shape), device)
}

/// Copies a tensor's values to the host as f32 (any float dtype is converted).
pub fn to_vec<const D: usize>(t: &Tensor<D>) -> Vec<f32> {
    t.to_data().convert::<f32>().try_to_vec::<f32>().expect("f32 tensor")
}

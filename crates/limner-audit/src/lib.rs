pub mod knn;
pub mod stats;

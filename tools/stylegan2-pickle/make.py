#!/usr/bin/env python3
"""Makes limner's StyleGAN2-ADA pickle fixtures with NVIDIA's own code.

    python tools/stylegan2-pickle/make.py --official ~/sg2ada --out crates/limner-pickle/tests/fixtures

`--official` is a checkout of github.com/NVlabs/stylegan2-ada-pytorch (it is imported, never
copied). For each fixture the script builds tiny networks with the official classes
(`training.networks.Generator` / `Discriminator`, `training.augment.AugmentPipe`), randomises
the weights that are zero or one at initialisation (so bias, noise and truncation handling are
tested), saves them exactly as `training/training_loop.py` does (`pickle.dump` of a dict with
`training_set_kwargs`, `G`, `D`, `G_ema`, `augment_pipe`; each module a deep copy in eval mode
with requires_grad off), and records the official outputs for fixed inputs in
`<name>.io.safetensors`.

Licence care: `torch_utils.persistence` embeds the full source of the module that defines each
class (NVIDIA's networks.py and augment.py, under NVIDIA's non-commercial licence) in the pickle
as the `module_src` strings. The fixtures must not carry that text, so the script rewrites every
such string to the placeholder `PLACEHOLDER` below (re-encoding only that opcode and fixing the
length of the protocol-4 frame around it); every other byte of the pickle is as `pickle.dump`
wrote it. limner never reads `module_src` (it never runs code from a pickle), so the placeholder
changes nothing for it. Before rewriting, the script checks that the pickle loads back with the
official code and reproduces the recorded outputs bit for bit.

Fixtures:
  tiny      16 px, z=w=16, 2 mapping layers, channel_base 512 / channel_max 32, fp32, no clamp
  clamp16   as tiny with num_fp16_res=2 and conv_clamp=0.5 (small on purpose, so the clamp
            really cuts: the official default 256 never triggers on random weights); G_ema is
            stored in half precision (`.half()`), as some users ship it; the outputs come from
            the same half-rounded weights in fp32 (`force_fp32=True`, as on a CPU)
  cond      8 px conditional model (c_dim=4, the mapping's class embedding)
  orig      8 px generator with architecture='orig'
  orig_G_ema_state_dict.pt   `torch.save(G_ema.state_dict())` of `orig` (the zip format)
  evil_*    plain-Python pickles that would run code (see `make_evil`); each was checked to
            really run it under Python's pickle before being written
"""
import argparse
import copy
import io
import os
import pickle
import pickletools
import struct
import subprocess
import sys

PLACEHOLDER = 'NVIDIA source removed by limner tools/stylegan2-pickle/make.py (licence); limner never runs it\n'


def rewrite_module_src(data: bytes) -> tuple[bytes, int]:
    """Replaces every `module_src` string value with PLACEHOLDER. Returns (new bytes, count)."""
    ops = list(pickletools.genops(data))
    # byte span of each opcode
    spans = []
    for i, (op, arg, pos) in enumerate(ops):
        end = ops[i + 1][2] if i + 1 < len(ops) else len(data)
        spans.append((pos, end))
    # a string is a module_src value when the previous string opcode (the dict key) is 'module_src'
    str_ops = {'SHORT_BINUNICODE', 'BINUNICODE', 'BINUNICODE8', 'UNICODE'}
    replace = {}
    memo = {}  # memo index -> string (keys are often memoized and fetched again by BINGET)
    top = None  # the string on top of the stack, if the last push was one
    prev_str = None  # the string pushed before `top` (the dict key)
    for i, (op, arg, pos) in enumerate(ops):
        if op.name in str_ops or op.name in ('BINGET', 'LONG_BINGET', 'GET'):
            value = arg if op.name in str_ops else memo.get(arg)
            if value is not None and top == 'module_src' and op.name in str_ops:
                enc = PLACEHOLDER.encode('utf-8')
                replace[i] = b'X' + struct.pack('<I', len(enc)) + enc  # BINUNICODE
            prev_str, top = top, value
        elif op.name == 'MEMOIZE':
            memo[len(memo)] = top
        elif op.name in ('BINPUT', 'LONG_BINPUT', 'PUT'):
            memo[arg] = top
        elif op.name == 'FRAME':
            pass
        else:
            prev_str, top = None, None
    out = bytearray()
    frame_at = None  # index in `out` of the current frame's 8-byte length
    frame_end = None  # end (old offset) of the current frame
    for i, (op, arg, pos) in enumerate(ops):
        start, end = spans[i]
        if frame_at is not None and start >= frame_end:
            struct.pack_into('<Q', out, frame_at, len(out) - frame_at - 8)
            frame_at = None
        if op.name == 'FRAME':
            out += data[start:start + 1]
            frame_at = len(out)
            out += data[start + 1:start + 9]
            frame_end = start + 9 + arg
            continue
        out += replace.get(i, data[start:end])
    if frame_at is not None:
        struct.pack_into('<Q', out, frame_at, len(out) - frame_at - 8)
    return bytes(out), len(replace)


def randomise(torch, G, D, seed):
    """As the parity fixtures: w_avg, noise strengths and biases are not left at their
    initial zeros/ones."""
    torch.manual_seed(seed + 1)
    G.mapping.w_avg.copy_(torch.randn_like(G.mapping.w_avg))
    gen = torch.Generator().manual_seed(seed + 4)
    for name, p in G.named_parameters():
        if name.endswith('noise_strength'):
            mag = torch.rand([], generator=gen) * 0.2 + 0.05
            sign = 1.0 if torch.rand([], generator=gen) < 0.5 else -1.0
            p.copy_(mag * sign)
    gen = torch.Generator().manual_seed(seed + 5)
    for name, p in G.named_parameters():
        if name.endswith('.bias'):
            if name.startswith('mapping.'):
                p.copy_(10 * torch.randn(p.shape, generator=gen))
            else:
                p.add_(0.1 * torch.randn(p.shape, generator=gen))
    gen = torch.Generator().manual_seed(seed + 6)
    for name, p in D.named_parameters():
        if name.endswith('.bias'):
            p.add_(0.1 * torch.randn(p.shape, generator=gen))


def make_snapshot(torch, dnnlib, res, z_dim, map_layers, cbase, cmax, c_dim=0, num_fp16_res=0, conv_clamp=None,
                  g_arch='skip', seed=0):
    """The networks, built as train.py / training_loop.py build them."""
    G_kwargs = dnnlib.EasyDict(class_name='training.networks.Generator', z_dim=z_dim, w_dim=z_dim,
                               mapping_kwargs=dnnlib.EasyDict(), synthesis_kwargs=dnnlib.EasyDict())
    D_kwargs = dnnlib.EasyDict(class_name='training.networks.Discriminator', block_kwargs=dnnlib.EasyDict(),
                               mapping_kwargs=dnnlib.EasyDict(), epilogue_kwargs=dnnlib.EasyDict())
    G_kwargs.synthesis_kwargs.channel_base = D_kwargs.channel_base = cbase
    G_kwargs.synthesis_kwargs.channel_max = D_kwargs.channel_max = cmax
    G_kwargs.mapping_kwargs.num_layers = map_layers
    G_kwargs.synthesis_kwargs.num_fp16_res = D_kwargs.num_fp16_res = num_fp16_res
    G_kwargs.synthesis_kwargs.conv_clamp = D_kwargs.conv_clamp = conv_clamp
    if g_arch != 'skip':
        G_kwargs.synthesis_kwargs.architecture = g_arch
    D_kwargs.epilogue_kwargs.mbstd_group_size = 4
    training_set_kwargs = dnnlib.EasyDict(class_name='training.dataset.ImageFolderDataset', path='faces.zip',
                                          use_labels=c_dim > 0, max_size=100, xflip=False, resolution=res)
    common_kwargs = dict(c_dim=c_dim, img_resolution=res, img_channels=3)
    torch.manual_seed(seed)
    G = dnnlib.util.construct_class_by_name(**G_kwargs, **common_kwargs).train().requires_grad_(False)
    D = dnnlib.util.construct_class_by_name(**D_kwargs, **common_kwargs).train().requires_grad_(False)
    with torch.no_grad():
        randomise(torch, G, D, seed)
    G_ema = copy.deepcopy(G).eval()
    augment_pipe = dnnlib.util.construct_class_by_name(class_name='training.augment.AugmentPipe',
                                                       xflip=1, rotate90=1, xint=1, scale=1, rotate=1, aniso=1, xfrac=1,
                                                       brightness=1, contrast=1, lumaflip=1, hue=1, saturation=1)
    augment_pipe.p.copy_(torch.as_tensor(0.25))
    return training_set_kwargs, G, D, G_ema, augment_pipe


def snapshot_bytes(training_set_kwargs, G, D, G_ema, augment_pipe):
    """training_loop.py's snapshot, byte for byte the way it writes it."""
    snapshot_data = dict(training_set_kwargs=dict(training_set_kwargs))
    for name, module in [('G', G), ('D', D), ('G_ema', G_ema), ('augment_pipe', augment_pipe)]:
        if module is not None:
            module = copy.deepcopy(module).eval().requires_grad_(False).cpu()
        snapshot_data[name] = module
        del module
    f = io.BytesIO()
    pickle.dump(snapshot_data, f)
    return f.getvalue()


def record(torch, G, D, c_dim, n=4, seed=2):
    """Official outputs for fixed inputs (force_fp32: the CPU path)."""
    torch.manual_seed(seed)
    z = torch.randn(n, G.z_dim)
    c = torch.zeros(n, c_dim)
    if c_dim:
        c[torch.arange(n), torch.arange(n) % c_dim] = 1
    out = {'z': z}
    if c_dim:
        out['c'] = c
    with torch.no_grad():
        out['w_psi1'] = G.mapping(z, c)
        out['w_psi07'] = G.mapping(z, c, truncation_psi=0.7)
        out['img_psi1'] = G.synthesis(out['w_psi1'], noise_mode='const', force_fp32=True)
        out['img_psi07'] = G(z, c, truncation_psi=0.7, noise_mode='const', force_fp32=True)
        out['img_psi1_nonoise'] = G.synthesis(out['w_psi1'], noise_mode='none', force_fp32=True)
        if D is not None:
            out['d_logits'] = D(out['img_psi1'], c, force_fp32=True)
    return {k: v.contiguous().float() for k, v in out.items()}


def make_evil(out_dir, marker):
    """Pickles that run code when Python unpickles them. Each is checked to really do so (in a
    child Python, with a throw-away marker) before it is written."""
    cmd = f'touch {marker}'

    class System:
        def __reduce__(self):
            return (os.system, (cmd,))

    class Eval:
        def __reduce__(self):
            return (eval, (f"open({marker!r}, 'w').write('ran')",))

    evil = {
        # a snapshot whose G_ema is an os.system call
        'evil_system': {'training_set_kwargs': {}, 'G_ema': System()},
        'evil_eval': {'G_ema': Eval()},
    }
    for name, obj in evil.items():
        data = pickle.dumps(obj, protocol=4)
        if os.path.exists(marker):
            os.remove(marker)
        subprocess.run([sys.executable, '-c', 'import pickle,sys; pickle.loads(sys.stdin.buffer.read())'],
                       input=data, check=False, capture_output=True)
        assert os.path.exists(marker), f'{name} did not run its code under Python pickle'
        os.remove(marker)
        with open(os.path.join(out_dir, f'{name}.pkl'), 'wb') as f:
            f.write(data)
        print(f'{name}.pkl: {len(data)} bytes (creates {marker} when Python unpickles it: checked)')


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--official', required=True, help='checkout of NVlabs/stylegan2-ada-pytorch')
    ap.add_argument('--out', required=True)
    ap.add_argument('--marker', default='/tmp/limner-pickle-evil-marker',
                    help='file the evil pickles create when run by Python (the Rust test checks it never appears)')
    args = ap.parse_args()
    sys.path.insert(0, os.path.abspath(args.official))
    import torch
    import dnnlib
    import legacy  # noqa: F401  (the official loader, used to check the pickles load back)
    from safetensors.torch import save_file
    torch.set_num_threads(2)
    os.makedirs(args.out, exist_ok=True)

    specs = {
        'tiny': dict(res=16, z_dim=16, map_layers=2, cbase=512, cmax=32),
        'clamp16': dict(res=16, z_dim=16, map_layers=2, cbase=512, cmax=32, num_fp16_res=2, conv_clamp=0.5, seed=10),
        'cond': dict(res=8, z_dim=8, map_layers=1, cbase=64, cmax=8, c_dim=4, seed=20),
        'orig': dict(res=8, z_dim=8, map_layers=1, cbase=64, cmax=8, g_arch='orig', seed=30),
    }
    for name, spec in specs.items():
        tsk, G, D, G_ema, aug = make_snapshot(torch, dnnlib, **spec)
        if name == 'clamp16':
            G_ema = G_ema.half()  # stored in half precision
            ref_G = copy.deepcopy(G_ema).float()
        else:
            ref_G = G_ema
        io_t = record(torch, ref_G, D, spec.get('c_dim', 0))
        data = snapshot_bytes(tsk, G, D, G_ema, aug)
        # the pickle loads back with the official loader and gives the same outputs
        loaded = legacy.load_network_pkl(io.BytesIO(data))
        back = loaded['G_ema'].float() if name == 'clamp16' else loaded['G_ema']
        again = record(torch, back, loaded['D'], spec.get('c_dim', 0))
        for k in io_t:
            assert torch.equal(io_t[k], again[k]), f'{name}: {k} differs after a pickle round trip'
        clean, n = rewrite_module_src(data)
        assert n >= 1 and b'import torch' not in clean and b'NVIDIA CORPORATION' not in clean, name
        # the rewritten pickle is still a valid pickle (its bytes walk without errors)
        for _ in pickletools.genops(clean):
            pass
        with open(os.path.join(args.out, f'{name}.pkl'), 'wb') as f:
            f.write(clean)
        if name == 'orig':
            # the same G_ema's state dict as torch.save writes it (a zip archive; no source inside)
            torch.save(G_ema.state_dict(), os.path.join(args.out, 'orig_G_ema_state_dict.pt'))
        meta = {'fixture': name, 'spec': repr(spec), 'torch': torch.__version__, 'module_src_rewritten': str(n)}
        save_file(io_t, os.path.join(args.out, f'{name}.io.safetensors'), metadata=meta)
        print(f'{name}.pkl: {len(clean)} bytes ({len(data)} as pickled, {n} module_src strings replaced); '
              f'outputs: {", ".join(io_t)}')
    make_evil(args.out, args.marker)


if __name__ == '__main__':
    main()

//! Hostile and broken pickles are refused with a clear error, and nothing in them runs.
//!
//! `evil_system.pkl` and `evil_eval.pkl` were made by tools/stylegan2-pickle/make.py with
//! Python's own pickle, which checked that loading them in Python really creates the marker
//! file `/tmp/limner-pickle-evil-marker`; here limner loads them and the marker never appears.

use std::path::{Path, PathBuf};

use limner_pickle::stylegan2::{read_snapshot, snapshot_from_value};
use limner_pickle::{load_bytes, load_file, Limits};

const MARKER: &str = "/tmp/limner-pickle-evil-marker";

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(name)
}

fn err_of(r: anyhow::Result<impl std::fmt::Debug>) -> String {
    format!("{:#}", r.expect_err("must be refused"))
}

/// A private temp file with these bytes.
fn temp_file(name: &str, bytes: &[u8]) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join(name);
    std::fs::write(&p, bytes).unwrap();
    (dir, p)
}

fn binunicode(s: &str) -> Vec<u8> {
    let mut v = vec![b'X'];
    v.extend((s.len() as u32).to_le_bytes());
    v.extend(s.as_bytes());
    v
}

#[test]
fn reduce_calling_os_system_is_refused_and_nothing_runs() {
    let _ = std::fs::remove_file(MARKER);
    for (file, global) in [("evil_system.pkl", "posix.system"), ("evil_eval.pkl", "builtins.eval")] {
        let e = err_of(read_snapshot(&fixture(file), &Limits::default()));
        assert!(e.contains(&format!("refused the global `{global}`")), "{e}");
        assert!(e.contains(file), "the error names the file: {e}");
        assert!(e.contains("nothing in it was run"), "{e}");
        assert!(!Path::new(MARKER).exists(), "{file} ran its payload");
    }
}

#[test]
fn a_real_snapshot_with_one_global_swapped_for_os_system_is_refused() {
    // the first OrderedDict of tiny.pkl becomes os.system: memo and framing stay readable
    let mut b = std::fs::read(fixture("tiny.pkl")).unwrap();
    let from = b"\x8c\x0bcollections\x94\x8c\x0bOrderedDict";
    let at = b.windows(from.len()).position(|w| w == from).expect("tiny.pkl names OrderedDict");
    b.splice(at..at + from.len(), b"\x8c\x02os\x94\x8c\x06system".iter().copied());
    let (_d, p) = temp_file("network-snapshot-000000.pkl", &b);
    let e = err_of(read_snapshot(&p, &Limits::default()));
    assert!(e.contains("refused the global `os.system`") && e.contains("network-snapshot-000000.pkl"), "{e}");
}

#[test]
fn unknown_globals_are_named_in_the_error() {
    for (module, name) in [("__main__", "Evil"), ("subprocess", "Popen"), ("torch", "load"), ("numpy", "load"), ("torch_utils.persistence", "_src_to_module")] {
        // protocol 2, text GLOBAL
        let mut p = b"\x80\x02c".to_vec();
        p.extend(format!("{module}\n{name}\n").as_bytes());
        p.extend(b")R.");
        let e = err_of(load_bytes(&p, &Limits::default()));
        assert!(e.contains(&format!("refused the global `{module}.{name}`")), "{e}");
        // protocol 4, STACK_GLOBAL
        let mut p = b"\x80\x04".to_vec();
        p.extend(binunicode(module));
        p.extend(binunicode(name));
        p.extend(b"\x93)R.");
        let e = err_of(load_bytes(&p, &Limits::default()));
        assert!(e.contains(&format!("refused the global `{module}.{name}`")), "{e}");
    }
    // instantiating a class by INST / OBJ is refused whatever it names
    let e = err_of(load_bytes(b"\x80\x02(ibuiltins\nobject\n.", &Limits::default()));
    assert!(e.contains("INST/OBJ"), "{e}");
}

#[test]
fn truncated_files_are_refused_clearly() {
    let b = std::fs::read(fixture("tiny.pkl")).unwrap();
    for cut in [1, 11, 100, b.len() / 3, b.len() / 2, b.len() - 2, b.len() - 1] {
        let (_d, p) = temp_file("cut.pkl", &b[..cut]);
        let e = err_of(read_snapshot(&p, &Limits::default()));
        assert!(e.contains("cut.pkl"), "{e}");
        assert!(e.contains("truncated"), "cut at {cut}: {e}");
    }
    let e = err_of(load_bytes(b"", &Limits::default()));
    assert!(e.contains("truncated"), "{e}");
}

#[test]
fn a_10_gb_length_field_is_refused_without_allocating() {
    let ten_gb = 10_000_000_000u64.to_le_bytes();
    for op in [b'\x8e', b'\x8d', b'\x96', b'\x95'] {
        // BINBYTES8, BINUNICODE8, BYTEARRAY8, FRAME
        let mut p = vec![0x80, 4, op];
        p.extend(ten_gb);
        p.extend(b"abc.");
        let e = err_of(load_bytes(&p, &Limits::default()));
        assert!(e.contains("10000000000") && e.contains("truncated or corrupt"), "{e}");
    }
    // a 4 GB BINUNICODE and LONG4
    let e = err_of(load_bytes(b"\x80\x03X\xff\xff\xff\xffabc.", &Limits::default()));
    assert!(e.contains("4294967295") && e.contains("truncated"), "{e}");
    // a storage inside a real snapshot that claims 10 G elements: the 8-byte count after the
    // first storage's key list (b4.const: 512 floats)
    let mut b = std::fs::read(fixture("tiny.pkl")).unwrap();
    let magic = b"\x80\x02\x8a\x0a\x6c\xfc\x9c\x46\xf9\x20\x6a\xa8\x50\x19\x2e";
    let m = b.windows(magic.len()).position(|w| w == magic).expect("a legacy torch payload");
    let count = 512u64.to_le_bytes();
    let c = m + b[m..].windows(8).position(|w| w == count).expect("the storage's element count");
    b[c..c + 8].copy_from_slice(&ten_gb);
    let (_d, p) = temp_file("big.pkl", &b);
    let e = err_of(read_snapshot(&p, &Limits::default()));
    assert!(e.contains("10000000000 elements") && e.contains("big.pkl"), "{e}");
}

#[test]
fn memo_stack_file_and_nesting_limits_hold() {
    let tight = Limits { max_stack: 100, max_memo: 10, max_file_bytes: 1 << 20, ..Limits::default() };
    let mut p = b"\x80\x04(".to_vec();
    p.extend([b'N'; 200]);
    p.extend(b"t.");
    let e = err_of(load_bytes(&p, &tight));
    assert!(e.contains("stack grew past 100"), "{e}");
    let mut p = b"\x80\x04N".to_vec();
    p.extend([0x94; 20]); // MEMOIZE
    p.push(b'.');
    let e = err_of(load_bytes(&p, &tight));
    assert!(e.contains("memo grew past 10"), "{e}");
    let e = err_of(load_file(&fixture("tiny.pkl"), &tight));
    assert!(e.contains("limit") && e.contains("tiny.pkl"), "{e}");

    // a torch payload inside a torch payload
    let mut inner = b"\x80\x02\x8a\x0a\x6c\xfc\x9c\x46\xf9\x20\x6a\xa8\x50\x19\x2e\x80\x02M\xe9\x03.\x80\x02}".to_vec();
    inner.extend(binunicode("little_endian"));
    inner.extend(b"\x88s.\x80\x02ctorch.storage\n_load_from_bytes\nC\x01x\x85R.");
    let mut outer = b"\x80\x02ctorch.storage\n_load_from_bytes\nB".to_vec();
    outer.extend((inner.len() as u32).to_le_bytes());
    outer.extend(&inner);
    outer.extend(b"\x85R.");
    let e = err_of(load_bytes(&outer, &Limits::default()));
    assert!(e.contains("nested 2 deep"), "{e}");
}

#[test]
fn a_module_that_contains_itself_is_refused_not_a_stack_overflow() {
    let mut p = b"\x80\x04ctorch_utils.persistence\n_reconstruct_persistent_obj\n}(".to_vec();
    for s in ["type", "class", "class_name", "Net", "state"] {
        p.extend(binunicode(s));
    }
    p.extend(b"}(");
    p.extend(binunicode("_modules"));
    p.extend(b"}q\x01uu\x85Rq\x02h\x01");
    p.extend(binunicode("child"));
    p.extend(b"h\x02s0.");
    let v = load_bytes(&p, &Limits::default()).unwrap();
    assert!(format!("{v:?}").contains("Net object"));
    let e = err_of(snapshot_from_value(&v, &Limits::default()));
    assert!(e.contains("nested deeper than 64"), "{e}");
}

#[test]
fn garbage_is_not_a_pickle() {
    let e = err_of(load_bytes(b"\x89PNG\r\n\x1a\n", &Limits::default()));
    assert!(e.contains("not a pickle of protocol 2 to 5"), "{e}");
    let e = err_of(load_bytes(b"\x80\x04\xff.", &Limits::default()));
    assert!(e.contains("unknown pickle opcode 0xff"), "{e}");
    // a pickle of plain data is read, but it is not a snapshot
    let v = load_bytes(b"\x80\x04K\x07.", &Limits::default()).unwrap();
    let e = err_of(snapshot_from_value(&v, &Limits::default()));
    assert!(e.contains("not a snapshot"), "{e}");
}

#[test]
fn a_million_nested_lists_do_not_overflow_the_stack() {
    // ] then a million times: a new list, the previous one appended to it (from the memo)
    let mut p = b"\x80\x04]\x94".to_vec();
    for i in 0..1_000_000u32 {
        p.push(b']');
        p.push(b'j');
        p.extend(i.to_le_bytes());
        p.extend(b"a\x940"); // append, memoize, pop
    }
    p.push(b'j');
    p.extend(1_000_000u32.to_le_bytes());
    p.push(b'.');
    let tight = Limits { max_memo: 2_000_000, ..Limits::default() };
    let v = load_bytes(&p, &tight).unwrap();
    let e = err_of(snapshot_from_value(&v, &tight));
    assert!(e.contains("not a snapshot"), "{e}");
    drop(v); // iterative: no stack overflow
}

#[test]
fn tensors_sharing_one_storage_cannot_ask_for_unbounded_memory() {
    // a real snapshot read with a small per-network budget is refused clearly
    let tight = Limits { max_network_elems: 10_000, ..Limits::default() };
    let e = err_of(read_snapshot(&fixture("tiny.pkl"), &tight));
    assert!(e.contains("more than 10000 elements") && e.contains("tiny.pkl"), "{e}");
}

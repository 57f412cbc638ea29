//! Where a built-in model's directions go and which copy is read: `limner models directions
//! --model default` writes into the user's data folder (`$LIMNER_HOME/data/default/`), never
//! into the source tree the binary was built from; the embedded copy is read until such a user
//! file exists, and the user's file wins once it does.

use limner_models::{directions_bytes, directions_path, DEFAULT_DIRECTIONS, DEFAULT_NAME, DIRECTIONS_FILE, RANDOM_FACE_DIRECTIONS};

/// One test (it sets LIMNER_HOME for the whole process).
#[test]
fn builtin_directions_live_in_the_user_data_folder_and_the_users_file_wins() {
    let home = tempfile::tempdir().unwrap();
    std::env::set_var("LIMNER_HOME", home.path());
    let random_face = limner_photoreal::MODEL_NAME;

    for (name, embedded) in [(DEFAULT_NAME, DEFAULT_DIRECTIONS.unwrap()), (random_face, RANDOM_FACE_DIRECTIONS.unwrap())] {
        let p = directions_path(name).unwrap();
        assert_eq!(p, home.path().join("data").join(name).join(DIRECTIONS_FILE));
        assert!(!p.starts_with(env!("CARGO_MANIFEST_DIR")) && !p.to_string_lossy().contains("/models/"), "{}", p.display());
        // no user file: the embedded copy
        assert_eq!(directions_bytes(name).unwrap().as_deref(), Some(embedded));
        // a user file: it wins
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, format!("{name}'s own")).unwrap();
        assert_eq!(directions_bytes(name).unwrap().unwrap(), format!("{name}'s own").into_bytes());
    }
    // the other model's user file does not leak into this one
    std::fs::remove_file(directions_path(DEFAULT_NAME).unwrap()).unwrap();
    assert_eq!(directions_bytes(DEFAULT_NAME).unwrap().as_deref(), DEFAULT_DIRECTIONS);

    // a generator file's directions sit beside it; none yet is `None`
    let g = home.path().join("mine.safetensors");
    std::fs::write(&g, b"x").unwrap();
    let gs = g.to_str().unwrap();
    assert_eq!(directions_path(gs).unwrap(), home.path().join("mine.directions.safetensors"));
    assert_eq!(directions_bytes(gs).unwrap(), None);
}

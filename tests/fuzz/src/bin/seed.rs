//! Writes the seed corpus of every target: `seed DIR` makes `DIR/TARGET/N` files (see
//! README.md), which `cargo fuzz run TARGET DIR/TARGET` starts from.

fn main() {
    let out = std::path::PathBuf::from(std::env::args().nth(1).unwrap_or_else(|| "corpus".into()));
    let fixtures = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures");
    for target in personctl_fuzz::TARGETS {
        let dir = out.join(target);
        std::fs::create_dir_all(&dir).expect("the corpus directory");
        for (i, seed) in personctl_fuzz::seeds(target, &fixtures)
            .into_iter()
            .enumerate()
        {
            std::fs::write(dir.join(format!("seed-{i:04}")), seed).expect("a seed");
        }
    }
}

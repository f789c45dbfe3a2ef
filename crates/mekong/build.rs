//! Embeds the city's example resources (`examples/hcmc/*.yaml`) in the binary, so that `mekong
//! serve` on the embedded backbone and `mekong check` work from any directory, in a container or
//! after `cargo install`.

use std::path::PathBuf;
use std::{env, fs};

fn main() {
    let root = PathBuf::from(env::var("CARGO_MANIFEST_DIR").expect("cargo sets it")).join("../..");
    let dir = root.join("examples/hcmc");
    let mut files: Vec<PathBuf> = fs::read_dir(&dir)
        .expect("examples/hcmc exists")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file() && p.extension().is_some_and(|e| e == "yaml" || e == "yml"))
        .collect();
    files.sort();
    let mut code = String::from(
        "/// The city's example resources: (the name errors refer to, the text).\n\
         pub const HCMC: &[(&str, &str)] = &[\n",
    );
    for file in &files {
        let name = file.file_name().expect("a file name").to_string_lossy();
        let path = file.canonicalize().expect("an existing file");
        code.push_str(&format!(
            "    (\"examples/hcmc/{name}\", include_str!({:?})),\n",
            path.display().to_string()
        ));
        println!("cargo:rerun-if-changed={}", path.display());
    }
    code.push_str("];\n");
    println!("cargo:rerun-if-changed={}", dir.display());
    let out = PathBuf::from(env::var("OUT_DIR").expect("cargo sets it")).join("examples.rs");
    fs::write(out, code).expect("writing the embedded examples");
}

//! The city's example resources, built into the binary (see build.rs): what `mekong serve` on the
//! embedded backbone applies, and what `mekong check` checks, when no directory is given.

include!(concat!(env!("OUT_DIR"), "/examples.rs"));

/// The examples as (file name, text) pairs, as files read from a directory would be.
pub fn sources() -> Vec<(String, String)> {
    HCMC.iter()
        .map(|(name, text)| (name.to_string(), text.to_string()))
        .collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_example_file_is_built_in() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/hcmc");
        let mut on_disk: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .filter_map(|e| e.ok()?.file_name().into_string().ok())
            .filter(|n| n.ends_with(".yaml") || n.ends_with(".yml"))
            .map(|n| format!("examples/hcmc/{n}"))
            .collect();
        on_disk.sort();
        let built_in: Vec<&str> = super::HCMC.iter().map(|(name, _)| *name).collect();
        assert_eq!(built_in, on_disk);
    }
}

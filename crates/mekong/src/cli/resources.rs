//! Reading resource files: a directory (or single files) into (file name, text) pairs, for the
//! store, an Apply or `mekong check`.

use std::path::PathBuf;

use anyhow::{Context, bail};

/// The texts of resource files: each path is a file, or a directory whose `*.yaml`, `*.yml` and
/// `*.json` files are read (sorted by name). Returns (file name, text) pairs.
pub fn read(paths: &[PathBuf]) -> anyhow::Result<Vec<(String, String)>> {
    let mut files = Vec::new();
    for path in paths {
        if path.is_dir() {
            let entries = std::fs::read_dir(path).with_context(|| {
                format!("cannot read the resources directory `{}`", path.display())
            })?;
            let mut found: Vec<_> = entries
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| {
                    p.is_file()
                        && matches!(
                            p.extension().and_then(|e| e.to_str()),
                            Some("yaml" | "yml" | "json")
                        )
                })
                .collect();
            if found.is_empty() {
                bail!("no *.yaml, *.yml or *.json files in `{}`", path.display());
            }
            found.sort();
            files.extend(found);
        } else {
            files.push(path.clone());
        }
    }
    files
        .iter()
        .map(|file| {
            let text = std::fs::read_to_string(file)
                .with_context(|| format!("cannot read `{}`", file.display()))?;
            Ok((file.display().to_string(), text))
        })
        .collect()
}

/// The texts of resource files, as an Apply carries them.
pub fn read_sources(
    files: &[PathBuf],
) -> Result<Vec<mekong_proto::v1::SourceText>, super::Failure> {
    let sources = read(files).map_err(|e| super::Failure::usage(format!("{e:#}")))?;
    Ok(sources
        .into_iter()
        .map(|(name, text)| mekong_proto::v1::SourceText { name, text })
        .collect())
}

//! Reading resource files: a directory (or single files) into texts for the store, or into a
//! catalog for `mekong check`. Every problem in every file is reported at once, each with its file,
//! document, line, field and what is wrong.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use mekong_core::{Catalog, ResourceError, parse_documents};

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

pub fn load(dir: &Path) -> anyhow::Result<Catalog> {
    let mut documents = Vec::new();
    let mut errors: Vec<ResourceError> = Vec::new();
    for (name, text) in read(&[dir.to_path_buf()])? {
        let (docs, errs) = parse_documents(&name, &text);
        documents.extend(docs);
        errors.extend(errs);
    }
    match Catalog::build(documents) {
        Ok(catalog) if errors.is_empty() => Ok(catalog),
        Ok(_) => bail!(mekong_core::CatalogError(errors)),
        Err(mut e) => {
            errors.append(&mut e.0);
            bail!(mekong_core::CatalogError(errors))
        }
    }
}

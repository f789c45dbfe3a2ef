//! Reading a directory of resource files into a catalog. Every problem in every file is reported at
//! once, each with its file, document, field and what is wrong.

use std::path::Path;

use anyhow::{Context, bail};
use mekong_core::{Catalog, ResourceError, parse_documents};

pub fn load(dir: &Path) -> anyhow::Result<Catalog> {
    let entries = std::fs::read_dir(dir)
        .with_context(|| format!("cannot read the resources directory `{}`", dir.display()))?;
    let mut files: Vec<_> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.is_file()
                && matches!(
                    p.extension().and_then(|e| e.to_str()),
                    Some("yaml" | "yml" | "json")
                )
        })
        .collect();
    files.sort();
    if files.is_empty() {
        bail!("no *.yaml, *.yml or *.json files in `{}`", dir.display());
    }
    let mut documents = Vec::new();
    let mut errors: Vec<ResourceError> = Vec::new();
    for file in &files {
        let text = std::fs::read_to_string(file)
            .with_context(|| format!("cannot read `{}`", file.display()))?;
        let (docs, errs) = parse_documents(&file.display().to_string(), &text);
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

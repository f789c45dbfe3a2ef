//! `mekong check [DIR]`: check resources without serving: what `serve` would load, or every problem
//! with its file, line, document, field and reason. Without DIR, the examples built into the binary.

use std::path::PathBuf;

use mekong_core::{Catalog, CatalogError, ResourceError, parse_documents};

use super::Failure;

pub fn run(dir: Option<PathBuf>) -> Result<u8, Failure> {
    let (label, sources) = match &dir {
        Some(dir) => (
            dir.display().to_string(),
            super::resources::read(std::slice::from_ref(dir))
                .map_err(|e| Failure::usage(format!("{e:#}")))?,
        ),
        None => (
            "examples/hcmc (built in)".to_string(),
            crate::examples::sources(),
        ),
    };
    let catalog = build(&sources).map_err(|e| Failure::refused_with(e.to_string()))?;
    let (types, routes, clients) = catalog.counts();
    let adapters = catalog.adapters().count();
    println!(
        "{label}: OK ({types} record types, {routes} routes, {clients} clients, {adapters} adapters)"
    );
    Ok(Failure::OK)
}

/// The catalog the texts make, or every problem in them.
fn build(sources: &[(String, String)]) -> Result<Catalog, CatalogError> {
    let mut documents = Vec::new();
    let mut errors: Vec<ResourceError> = Vec::new();
    for (name, text) in sources {
        let (docs, errs) = parse_documents(name, text);
        documents.extend(docs);
        errors.extend(errs);
    }
    match Catalog::build(documents) {
        Ok(catalog) if errors.is_empty() => Ok(catalog),
        Ok(_) => Err(CatalogError(errors)),
        Err(mut e) => {
            errors.append(&mut e.0);
            Err(CatalogError(errors))
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_built_in_examples_are_valid() {
        let catalog = super::build(&crate::examples::sources()).unwrap();
        assert!(catalog.counts().0 > 0);
    }
}

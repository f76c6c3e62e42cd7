//! Writes the REST API's OpenAPI document, generated from the route
//! crates, to the file given (`make openapi`: `docs/openapi.json`, which
//! the health function serves and a test keeps current).

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let path = std::env::args()
        .nth(1)
        .ok_or("usage: openapi <path of the document to write>")?;
    std::fs::write(&path, infra::functions::openapi_json())?;
    eprintln!("wrote {path}");
    Ok(())
}

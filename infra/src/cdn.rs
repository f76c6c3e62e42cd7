//! The local stand-in for jsDelivr: the files of the renderer `GET /docs`
//! loads ([`health::docs::RENDERER`]), served by the local REST gateway at
//! `/_cdn/npm/<package>@<version>/<file>` from `infra/docs/node_modules`,
//! as jsDelivr serves `https://cdn.jsdelivr.net/npm/<package>@<version>/<file>`
//! from the npm tarball. `make dev` and the tests point the page here
//! (`DOCS_ASSETS_URL=/_cdn/npm`), so it renders without internet, and the
//! page's integrity attribute is checked against these bytes by the browser.
//!
//! `npm ci --prefix infra/docs --no-audit --no-fund --ignore-scripts`
//! installs the package (`make dev` and `make unit` do, when
//! `infra/docs/package-lock.json` changes); the gateway refuses to start
//! without it, or with another version than health pins.

use std::{
    path::{Path, PathBuf},
    sync::Arc,
};

use axum::{
    Router,
    extract::{Path as UrlPath, State},
    response::{IntoResponse, Response},
    routing::get,
};
use health::docs::RENDERER;
use http::{HeaderName, HeaderValue, StatusCode, header};

/// Where the gateway serves the CDN's root; `DOCS_ASSETS_URL` under
/// `make dev` and in the tests.
pub const LOCAL_CDN_PATH: &str = "/_cdn/npm";

/// The npm project whose packages the local CDN serves.
pub fn docs_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("docs")
}

const INSTALL: &str = "npm ci --prefix infra/docs --no-audit --no-fund --ignore-scripts";

/// The installed renderer package, checked to be the pinned version.
#[derive(Debug, Clone)]
pub struct LocalCdn {
    /// The package's directory in `node_modules`.
    pub(crate) package_dir: PathBuf,
}

impl LocalCdn {
    /// The renderer as `npm ci` installed it into `infra/docs`.
    pub fn locate() -> Result<Self, String> {
        Self::at(&docs_dir().join("node_modules"))
    }

    /// The renderer as installed under `node_modules`. Fails, saying how
    /// to install it, when it is missing, of another version, or without
    /// the pinned file.
    pub fn at(node_modules: &Path) -> Result<Self, String> {
        let package_dir = node_modules.join(RENDERER.package);
        let manifest = package_dir.join("package.json");
        let text = std::fs::read_to_string(&manifest).map_err(|err| {
            format!(
                "the renderer of /docs ({}) is not installed ({}: {err}); run `{INSTALL}` (make dev and make unit do)",
                RENDERER.package,
                manifest.display()
            )
        })?;
        let installed = serde_json::from_str::<serde_json::Value>(&text)
            .ok()
            .and_then(|manifest| manifest["version"].as_str().map(str::to_owned))
            .ok_or_else(|| format!("{} has no version", manifest.display()))?;
        if installed != RENDERER.version {
            return Err(format!(
                "{} {installed} is installed in {}, but health pins {}; run `{INSTALL}`",
                RENDERER.package,
                node_modules.display(),
                RENDERER.version
            ));
        }
        let file = package_dir.join(RENDERER.file);
        if !file.is_file() {
            return Err(format!(
                "{} is missing from the installed {}; run `{INSTALL}`",
                file.display(),
                RENDERER.package
            ));
        }
        Ok(Self { package_dir })
    }

    /// The route of the CDN, for the gateway to merge into its own.
    pub fn router<S: Clone + Send + Sync + 'static>(self) -> Router<S> {
        Router::new()
            .route(&format!("{LOCAL_CDN_PATH}/{{*path}}"), get(serve))
            .with_state(Arc::new(self))
    }

    /// The file of `path` (`<package>@<version>/<file>`), when it names a
    /// file of the installed package at its version.
    fn file_of(&self, path: &str) -> Option<PathBuf> {
        let file = path.strip_prefix(&format!("{}@{}/", RENDERER.package, RENDERER.version))?;
        // A relative path of plain segments only: nothing may climb out of
        // the package.
        let plain = file.split('/').all(|segment| {
            !segment.is_empty() && segment != "." && segment != ".." && !segment.contains('\\')
        });
        plain.then(|| self.package_dir.join(file))
    }
}

/// The content types a CDN gives what the package holds (jsDelivr's for
/// scripts: the browser refuses a script served as anything else under
/// `nosniff`).
fn content_type(path: &Path) -> &'static str {
    match path.extension().and_then(|ext| ext.to_str()) {
        Some("js" | "mjs" | "cjs") => "application/javascript; charset=utf-8",
        Some("css") => "text/css; charset=utf-8",
        Some("json" | "map") => "application/json; charset=utf-8",
        Some("svg") => "image/svg+xml",
        Some("html") => "text/html; charset=utf-8",
        _ => "application/octet-stream",
    }
}

fn not_found(path: &str) -> Response {
    (
        StatusCode::NOT_FOUND,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        format!(
            "{path} is not a file of {}@{} in infra/docs/node_modules\n",
            RENDERER.package, RENDERER.version
        ),
    )
        .into_response()
}

/// GET /_cdn/npm/{path}: the file's bytes as they are on disk, with headers
/// like jsDelivr's for a file of a pinned version. The CORS header is what
/// lets the page's `crossorigin` load check integrity when the page and the
/// file are on different origins (`DOCS_ASSETS_URL` naming the gateway by
/// another host name than the page's).
async fn serve(State(cdn): State<Arc<LocalCdn>>, UrlPath(path): UrlPath<String>) -> Response {
    let Some(file) = cdn.file_of(&path) else {
        return not_found(&path);
    };
    let read = tokio::task::spawn_blocking({
        let file = file.clone();
        move || std::fs::read(file)
    });
    match read.await {
        Ok(Ok(bytes)) => (
            [
                (
                    header::CONTENT_TYPE,
                    HeaderValue::from_static(content_type(&file)),
                ),
                (
                    header::CACHE_CONTROL,
                    HeaderValue::from_static("public, max-age=31536000, immutable"),
                ),
                (
                    header::ACCESS_CONTROL_ALLOW_ORIGIN,
                    HeaderValue::from_static("*"),
                ),
                (
                    header::X_CONTENT_TYPE_OPTIONS,
                    HeaderValue::from_static("nosniff"),
                ),
                (
                    HeaderName::from_static("cross-origin-resource-policy"),
                    HeaderValue::from_static("cross-origin"),
                ),
            ],
            bytes,
        )
            .into_response(),
        _ => not_found(&path),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::{Engine, engine::general_purpose::STANDARD};
    use sha2::{Digest, Sha384};

    fn installed() -> LocalCdn {
        LocalCdn::locate().unwrap_or_else(|err| panic!("{err}"))
    }

    #[test]
    fn the_pinned_hash_is_the_installed_files() {
        let cdn = installed();
        let bytes = std::fs::read(cdn.package_dir.join(RENDERER.file)).unwrap();
        let integrity = format!("sha384-{}", STANDARD.encode(Sha384::digest(&bytes)));
        assert_eq!(
            integrity, RENDERER.integrity,
            "health::docs::RENDERER.integrity is not the hash of the installed {}",
            RENDERER.file
        );
    }

    #[test]
    fn the_npm_project_pins_the_version_health_pins() {
        let read = |name: &str| -> serde_json::Value {
            let path = docs_dir().join(name);
            let text = std::fs::read_to_string(&path)
                .unwrap_or_else(|err| panic!("{}: {err}", path.display()));
            serde_json::from_str(&text).unwrap()
        };
        let manifest = read("package.json");
        assert_eq!(
            manifest["dependencies"][RENDERER.package], RENDERER.version,
            "infra/docs/package.json must pin the exact version"
        );
        assert_eq!(manifest["dependencies"].as_object().unwrap().len(), 1);
        let lock = read("package-lock.json");
        assert_eq!(
            lock["packages"][format!("node_modules/{}", RENDERER.package)]["version"],
            RENDERER.version
        );
    }

    #[test]
    fn make_dev_points_the_page_at_the_local_cdn() {
        let env =
            std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/env.sh"))
                .unwrap();
        assert!(
            env.contains(&format!(
                "export DOCS_ASSETS_URL=\"${{DOCS_ASSETS_URL:-{LOCAL_CDN_PATH}}}\""
            )),
            "infra/scripts/env.sh must set DOCS_ASSETS_URL to {LOCAL_CDN_PATH}"
        );
    }

    #[test]
    fn only_plain_paths_of_the_pinned_version_are_files() {
        let cdn = LocalCdn {
            package_dir: PathBuf::from("/packages/renderer"),
        };
        let pinned = RENDERER.cdn_path();
        assert_eq!(
            cdn.file_of(&pinned),
            Some(PathBuf::from("/packages/renderer").join(RENDERER.file))
        );
        let other_version = format!("{}@0.0.1/{}", RENDERER.package, RENDERER.file);
        let unversioned = format!("{}/{}", RENDERER.package, RENDERER.file);
        let prefix = format!("{}@{}", RENDERER.package, RENDERER.version);
        for refused in [
            other_version,
            unversioned,
            format!("{prefix}/../../secret"),
            format!("{prefix}/dist/./x.js"),
            format!("{prefix}/dist//x.js"),
            format!("{prefix}/"),
            format!("{prefix}/dist\\..\\x.js"),
            "left-pad@1.3.0/index.js".to_owned(),
        ] {
            assert_eq!(cdn.file_of(&refused), None, "{refused}");
        }
    }

    #[test]
    fn a_missing_install_says_how_to_install() {
        let err = LocalCdn::at(Path::new("/nonexistent/node_modules")).unwrap_err();
        assert!(err.contains("npm ci --prefix infra/docs"), "{err}");
        assert!(err.contains(RENDERER.package), "{err}");
    }

    #[test]
    fn another_installed_version_is_refused() {
        let node_modules = std::env::temp_dir().join(format!("cdn-test-{}", std::process::id()));
        let package_dir = node_modules.join(RENDERER.package);
        std::fs::create_dir_all(&package_dir).unwrap();
        std::fs::write(package_dir.join("package.json"), r#"{"version":"0.0.1"}"#).unwrap();
        let err = LocalCdn::at(&node_modules).unwrap_err();
        std::fs::remove_dir_all(&node_modules).unwrap();
        assert!(
            err.contains("0.0.1") && err.contains(RENDERER.version),
            "{err}"
        );
        assert!(err.contains("npm ci --prefix infra/docs"), "{err}");
    }

    #[test]
    fn content_types_are_jsdelivrs() {
        assert_eq!(
            content_type(Path::new("dist/browser/standalone.js")),
            "application/javascript; charset=utf-8"
        );
        assert_eq!(
            content_type(Path::new("dist/browser/standalone.js.map")),
            "application/json; charset=utf-8"
        );
        assert_eq!(
            content_type(Path::new("dist/style.css")),
            "text/css; charset=utf-8"
        );
        assert_eq!(
            content_type(Path::new("LICENSE")),
            "application/octet-stream"
        );
    }
}

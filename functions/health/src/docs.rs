//! `GET /docs`: the HTML page that renders `/openapi.json` in the reader's
//! browser, the pinned renderer it loads, and the Content-Security-Policy
//! it is sent with.
//!
//! The renderer is one file of one npm package at one exact version,
//! [`RENDERER`], loaded with subresource integrity, so a CDN that served
//! other bytes would get the script refused rather than run. On AWS it comes
//! from jsDelivr, which serves an npm tarball's files as they are. Locally
//! (`DOCS_ASSETS_URL`) the local gateway serves the same file from
//! `infra/docs/node_modules` in jsDelivr's place, so the page renders with no
//! internet and the integrity check runs there too. The function itself
//! carries none of the renderer's bytes.
//!
//! Everything is decided at cold start: the page and its policy are built
//! once from the configuration, and every request gets the same bytes.

use axum::{
    body::Bytes,
    response::{IntoResponse, Response},
};
use base64::{Engine, engine::general_purpose::STANDARD};
use http::{HeaderValue, header};
use platform::config::{ConfigError, Source, present};
use sha2::{Digest, Sha256};

/// A file of an npm package, pinned by version and by its SRI hash.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Renderer {
    pub package: &'static str,
    pub version: &'static str,
    /// The file's path inside the package.
    pub file: &'static str,
    /// Its subresource integrity: `sha384-` and the base64 of the SHA-384
    /// of the file's bytes, as the npm tarball holds them.
    pub integrity: &'static str,
}

impl Renderer {
    /// Where an npm CDN serves the file below its root, as jsDelivr's
    /// `/npm/<package>@<version>/<file>` does.
    pub fn cdn_path(&self) -> String {
        format!("{}@{}/{}", self.package, self.version, self.file)
    }
}

/// The one pin of the renderer: `infra/docs/package.json` installs this
/// version, and infra's tests check that this hash is that file's.
///
/// Scalar's standalone bundle is one file (the chunks beside it belong to
/// the ES module build), needs no `unsafe-eval` once zod is told it is
/// jitless ([`PRELUDE`]), and reads its configuration from a data
/// attribute, so the page runs no inline script but that one line.
pub const RENDERER: Renderer = Renderer {
    package: "@scalar/api-reference",
    version: "1.76.0",
    file: "dist/browser/standalone.js",
    integrity: "sha384-oH1C0RwqcwbVXkC+r8A+4qRoyEUQdtxAzOwumkxZtQBBcsy61FOoPt7B50OVJYYQ",
};

/// The variable that says where the page loads the renderer from.
pub const ASSETS_URL_VARIABLE: &str = "DOCS_ASSETS_URL";

/// jsDelivr's npm root: `<root>/<package>@<version>/<file>` is the file of
/// that version's tarball.
pub const DEFAULT_ASSETS_URL: &str = "https://cdn.jsdelivr.net/npm";

/// The root of an npm CDN that the page loads [`RENDERER`] from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AssetsUrl {
    /// A CDN of its own origin, such as jsDelivr (`https://cdn.jsdelivr.net/npm`).
    Absolute(String),
    /// A path on the origin that serves the page, as the local gateway
    /// serves its stand-in for jsDelivr (`/_cdn/npm`).
    SameOrigin(String),
}

impl AssetsUrl {
    fn root(&self) -> &str {
        match self {
            AssetsUrl::Absolute(url) | AssetsUrl::SameOrigin(url) => url,
        }
    }

    /// The renderer's URL under this root.
    pub fn renderer_url(&self) -> String {
        format!("{}/{}", self.root(), RENDERER.cdn_path())
    }

    /// The `script-src` source that allows the renderer and nothing else of
    /// its host: the file's full URL (CSP matches a path without a trailing
    /// slash exactly). A same-origin root can only be named as `'self'`.
    fn script_source(&self) -> String {
        match self {
            AssetsUrl::Absolute(_) => self.renderer_url(),
            AssetsUrl::SameOrigin(_) => "'self'".to_owned(),
        }
    }
}

/// How `/docs` is configured.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DocsConfig {
    /// `DOCS_ASSETS_URL`: an `http(s)://` URL, or a path starting with `/`
    /// on the API's own origin; [`DEFAULT_ASSETS_URL`] when unset. A
    /// trailing `/` is dropped.
    pub assets_url: AssetsUrl,
}

impl DocsConfig {
    pub fn from_source(source: &dyn Source) -> Result<Self, ConfigError> {
        let raw = present(source, ASSETS_URL_VARIABLE);
        let value = raw.as_deref().map(str::trim).unwrap_or(DEFAULT_ASSETS_URL);
        let invalid = |reason: &str| ConfigError::Invalid {
            name: ASSETS_URL_VARIABLE,
            reason: format!("{reason} (got {value:?})"),
        };
        // The value ends up in an HTML attribute and in the CSP header:
        // anything beyond a URL's plain characters could break out of
        // either (a quote or `<` out of the attribute, `;` or `,` out of
        // the directive).
        if !value.bytes().all(|b| {
            b.is_ascii_alphanumeric()
                || matches!(
                    b,
                    b'-' | b'.' | b'_' | b'~' | b'/' | b':' | b'@' | b'%' | b'+'
                )
        }) {
            return Err(invalid(
                "expected a URL of letters, digits and `-._~/:@%+` only",
            ));
        }
        let root = value.trim_end_matches('/');
        let assets_url = if let Some(rest) = root
            .strip_prefix("https://")
            .or_else(|| root.strip_prefix("http://"))
        {
            let host = rest.split('/').next().unwrap_or_default();
            if host.is_empty() || host.contains('@') {
                return Err(invalid("expected an http(s) URL with a host"));
            }
            AssetsUrl::Absolute(root.to_owned())
        } else if value.starts_with('/') && !value.starts_with("//") {
            AssetsUrl::SameOrigin(root.to_owned())
        } else {
            return Err(invalid(
                "expected an http(s) URL or a path starting with a single `/`",
            ));
        };
        Ok(Self { assets_url })
    }
}

/// Run before the renderer: Scalar's schema library (zod 4) probes once
/// whether it may compile validators with `Function("")`. This policy
/// refuses that, the probe catches the refusal and zod interprets instead,
/// but the browser still reports a CSP violation for it. Declaring zod
/// jitless first skips the probe. The policy allows this script, and no
/// other inline one, by its hash.
pub const PRELUDE: &str = "globalThis.__zod_globalConfig = { jitless: true };";

/// What the renderer is told, beyond the document's URL: nothing that
/// reaches a host other than this API and the renderer's own file.
/// - `withDefaultFonts: false`: the default fonts (Inter, JetBrains Mono)
///   come from fonts.scalar.com; the system's fonts are used instead.
/// - `telemetry: false`: the option exists; nothing of it may run.
/// - `agent.disabled`: "Agent Scalar", an AI chat about the document that
///   talks to Scalar's servers, is on by default when the page is served
///   from localhost.
/// - `showDeveloperTools: "never"`: the localhost toolbar offers to
///   upload the document to Scalar's dashboard and registry.
/// - `mcp.disabled` and `hideClientButton`: with both, the sidebar shows no
///   button, where it would otherwise link to Scalar's hosted client or MCP
///   generator with this document's URL.
///
/// JSON in a single-quoted attribute: it holds no `'` or `&`.
pub const SCALAR_CONFIGURATION: &str = r#"{"withDefaultFonts":false,"telemetry":false,"agent":{"disabled":true},"mcp":{"disabled":true},"showDeveloperTools":"never","hideClientButton":true}"#;

/// The page and its headers, built once at cold start.
#[derive(Debug, Clone)]
pub struct DocsPage {
    html: Bytes,
    policy: HeaderValue,
}

impl DocsPage {
    pub fn new(config: &DocsConfig) -> Self {
        let prelude_hash = STANDARD.encode(Sha256::digest(PRELUDE.as_bytes()));
        let html = page(&config.assets_url);
        let policy = policy(&config.assets_url, &prelude_hash);
        Self {
            html: Bytes::from(html),
            policy: HeaderValue::from_str(&policy)
                .expect("the policy is built of checked characters only"),
        }
    }

    /// The page's `Content-Security-Policy`.
    pub fn policy(&self) -> &str {
        self.policy.to_str().unwrap_or_default()
    }

    /// The page.
    pub fn html(&self) -> &[u8] {
        &self.html
    }

    /// GET /docs
    pub fn response(&self) -> Response {
        (
            [
                (
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("text/html; charset=utf-8"),
                ),
                (header::CONTENT_SECURITY_POLICY, self.policy.clone()),
                // The CDN need not learn which API's documentation is open.
                (
                    header::REFERRER_POLICY,
                    HeaderValue::from_static("no-referrer"),
                ),
                (
                    header::X_CONTENT_TYPE_OPTIONS,
                    HeaderValue::from_static("nosniff"),
                ),
            ],
            self.html.clone(),
        )
            .into_response()
    }
}

/// The policy of the page, directive by directive:
/// - `default-src 'none'`: whatever is not named below is refused (fonts,
///   frames, workers, media, objects, manifests).
/// - `script-src`: the prelude by its hash and the renderer's file; no
///   `unsafe-eval`, no `unsafe-inline`.
/// - `style-src 'unsafe-inline'`: the renderer injects its stylesheets at
///   run time as `<style>` elements (its bundled CSS, the theme it
///   generates from the configuration, the editor's and the toasts'
///   styles, only the first of which takes a nonce) and sets `style`
///   attributes; with a nonce or hashes it renders unstyled. Styles cannot
///   run script; no stylesheet is loaded from anywhere.
/// - `img-src 'self' data:`: the icons the CSS draws as `data:` URLs.
/// - `connect-src 'self'`: the document (`openapi.json`) and "try it",
///   whose requests go to this API, on the origin that serves the page
///   (`servers` in the document is a path on it).
/// - `base-uri 'none'`, `form-action 'none'`, `frame-ancestors 'none'`: no
///   `<base>`, no form posts, no framing of the page by other sites.
fn policy(assets: &AssetsUrl, prelude_hash: &str) -> String {
    [
        "default-src 'none'".to_owned(),
        format!(
            "script-src 'sha256-{prelude_hash}' {}",
            assets.script_source()
        ),
        "style-src 'unsafe-inline'".to_owned(),
        "img-src 'self' data:".to_owned(),
        "connect-src 'self'".to_owned(),
        "base-uri 'none'".to_owned(),
        "form-action 'none'".to_owned(),
        "frame-ancestors 'none'".to_owned(),
    ]
    .join("; ")
}

/// `openapi.json` is relative, so the page finds the document under the
/// stage or base path it was itself reached at. The renderer reads the
/// document's URL and its configuration from the `#api-reference` element,
/// which is data (`application/json`), not script. The empty icon spares
/// the browser a request for `/favicon.ico`, which the API does not serve.
fn page(assets: &AssetsUrl) -> String {
    format!(
        r#"<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>Social API</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<link rel="icon" href="data:,">
</head>
<body>
<noscript>This page needs JavaScript. The document it renders is <a href="openapi.json">openapi.json</a>.</noscript>
<script>{PRELUDE}</script>
<script id="api-reference" type="application/json" data-url="openapi.json" data-configuration='{SCALAR_CONFIGURATION}'></script>
<script src="{url}" integrity="{integrity}" crossorigin="anonymous"></script>
</body>
</html>
"#,
        url = assets.renderer_url(),
        integrity = RENDERER.integrity,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn config(value: Option<&str>) -> Result<DocsConfig, ConfigError> {
        let value = value.map(str::to_owned);
        DocsConfig::from_source(&move |name: &str| {
            (name == ASSETS_URL_VARIABLE)
                .then(|| value.clone())
                .flatten()
        })
    }

    fn directives(policy: &str) -> BTreeMap<&str, Vec<&str>> {
        policy
            .split(';')
            .map(|directive| {
                let mut words = directive.split_whitespace();
                let name = words.next().expect("a directive has a name");
                (name, words.collect())
            })
            .collect()
    }

    const PINNED_URL: &str =
        "https://cdn.jsdelivr.net/npm/@scalar/api-reference@1.76.0/dist/browser/standalone.js";

    #[test]
    fn the_renderer_is_pinned_to_one_version_with_its_integrity() {
        let page = DocsPage::new(&config(None).unwrap());
        let html = std::str::from_utf8(page.html()).unwrap();
        assert_eq!(
            AssetsUrl::Absolute(DEFAULT_ASSETS_URL.into()).renderer_url(),
            PINNED_URL
        );
        let tag = format!(
            r#"<script src="{PINNED_URL}" integrity="{}" crossorigin="anonymous"></script>"#,
            RENDERER.integrity
        );
        assert!(html.contains(&tag), "{html}");
        assert!(RENDERER.integrity.starts_with("sha384-"));
        assert_eq!(
            STANDARD
                .decode(&RENDERER.integrity["sha384-".len()..])
                .unwrap()
                .len(),
            48,
            "a SHA-384 is 48 bytes"
        );
        // An exact version, never a range or a tag.
        assert!(
            RENDERER
                .version
                .split('.')
                .all(|part| !part.is_empty() && part.bytes().all(|b| b.is_ascii_digit())),
            "{}",
            RENDERER.version
        );
        assert_eq!(html.matches("<script").count(), 3, "{html}");
    }

    #[test]
    fn the_policy_allows_the_renderer_and_this_api_only() {
        let page = DocsPage::new(&config(None).unwrap());
        let policy = directives(page.policy());
        assert_eq!(policy["default-src"], ["'none'"]);
        let prelude = format!("'sha256-{}'", STANDARD.encode(Sha256::digest(PRELUDE)));
        assert_eq!(policy["script-src"], [prelude.as_str(), PINNED_URL]);
        assert_eq!(policy["style-src"], ["'unsafe-inline'"]);
        assert_eq!(policy["img-src"], ["'self'", "data:"]);
        assert_eq!(policy["connect-src"], ["'self'"]);
        assert_eq!(policy["base-uri"], ["'none'"]);
        assert_eq!(policy["form-action"], ["'none'"]);
        assert_eq!(policy["frame-ancestors"], ["'none'"]);
        assert_eq!(policy.len(), 8, "{policy:?}");
        let text = page.policy();
        for never in ["unsafe-eval", "wasm-unsafe-eval", "*", "http:", "https:"] {
            assert!(
                !policy.values().flatten().any(|source| *source == never),
                "{never} in {text}"
            );
        }
        assert!(!text.contains("unsafe-eval"), "{text}");
        // jsDelivr is the one other host, and only for the one file.
        let hosts: Vec<&str> = policy
            .values()
            .flatten()
            .filter(|source| source.contains("://"))
            .copied()
            .collect();
        assert_eq!(hosts, [PINNED_URL]);
    }

    #[test]
    fn the_prelude_is_the_only_inline_script_and_the_policy_names_it() {
        let page = DocsPage::new(&config(None).unwrap());
        let html = std::str::from_utf8(page.html()).unwrap();
        assert!(
            html.contains(&format!("<script>{PRELUDE}</script>")),
            "{html}"
        );
        // The configuration element is data: the browser never runs it.
        assert!(html.contains(
            r#"<script id="api-reference" type="application/json" data-url="openapi.json""#
        ));
    }

    #[test]
    fn the_renderer_is_told_to_call_no_third_party() {
        assert!(!SCALAR_CONFIGURATION.contains('\'') && !SCALAR_CONFIGURATION.contains('&'));
        let configuration: serde_json::Value = serde_json::from_str(SCALAR_CONFIGURATION).unwrap();
        assert_eq!(configuration["withDefaultFonts"], false);
        assert_eq!(configuration["telemetry"], false);
        assert_eq!(configuration["agent"]["disabled"], true);
        assert_eq!(configuration["mcp"]["disabled"], true);
        assert_eq!(configuration["showDeveloperTools"], "never");
        assert_eq!(configuration["hideClientButton"], true);
        // No proxy: "try it" goes straight to this API.
        assert!(configuration.get("proxyUrl").is_none());
        let html = DocsPage::new(&config(None).unwrap()).html().to_vec();
        let html = String::from_utf8(html).unwrap();
        assert!(html.contains(&format!("data-configuration='{SCALAR_CONFIGURATION}'")));
    }

    #[test]
    fn the_response_carries_the_policy_and_the_html_type() {
        let page = DocsPage::new(&config(None).unwrap());
        let response = page.response();
        let headers = response.headers();
        assert_eq!(headers[header::CONTENT_TYPE], "text/html; charset=utf-8");
        assert_eq!(headers[header::CONTENT_SECURITY_POLICY], page.policy());
        assert_eq!(headers[header::REFERRER_POLICY], "no-referrer");
        assert_eq!(headers[header::X_CONTENT_TYPE_OPTIONS], "nosniff");
    }

    #[test]
    fn a_same_origin_root_is_allowed_as_self() {
        let config = config(Some("/_cdn/npm/")).unwrap();
        assert_eq!(config.assets_url, AssetsUrl::SameOrigin("/_cdn/npm".into()));
        let page = DocsPage::new(&config);
        let html = std::str::from_utf8(page.html()).unwrap();
        assert!(html.contains(&format!(
            r#"<script src="/_cdn/npm/@scalar/api-reference@1.76.0/dist/browser/standalone.js" integrity="{}" crossorigin="anonymous">"#,
            RENDERER.integrity
        )));
        let policy = directives(page.policy());
        assert_eq!(policy["script-src"][1..], ["'self'"]);
    }

    #[test]
    fn another_cdn_root_is_allowed_for_the_one_file() {
        let config = config(Some(" http://127.0.0.1:3000/_cdn/npm ")).unwrap();
        assert_eq!(
            config.assets_url,
            AssetsUrl::Absolute("http://127.0.0.1:3000/_cdn/npm".into())
        );
        let page = DocsPage::new(&config);
        let policy = directives(page.policy());
        assert_eq!(
            policy["script-src"][1..],
            [
                "http://127.0.0.1:3000/_cdn/npm/@scalar/api-reference@1.76.0/dist/browser/standalone.js"
            ]
        );
    }

    #[test]
    fn a_bad_assets_url_is_refused_by_name() {
        assert_eq!(
            config(Some("  ")).unwrap().assets_url,
            AssetsUrl::Absolute(DEFAULT_ASSETS_URL.into())
        );
        for bad in [
            "cdn.jsdelivr.net/npm",
            "ftp://cdn.test/npm",
            "//cdn.test/npm",
            "https://",
            "https:///npm",
            "https://user@cdn.test/npm",
            "https://cdn.test/npm; script-src *",
            "https://cdn.test/npm'",
            "/_cdn/\"npm",
            "https://cdn.test/a b",
            "https://cdn.test/<npm>",
        ] {
            let err = config(Some(bad)).unwrap_err();
            assert!(
                matches!(
                    err,
                    ConfigError::Invalid {
                        name: ASSETS_URL_VARIABLE,
                        ..
                    }
                ),
                "{bad}: {err}"
            );
            assert!(err.to_string().contains("DOCS_ASSETS_URL"), "{bad}: {err}");
        }
    }
}

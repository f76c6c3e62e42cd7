//! `/docs` through the local REST gateway, as `make dev` serves it: the page
//! points at the gateway's own copy of the pinned renderer, the gateway
//! serves that file's bytes as jsDelivr would, and `/openapi.json` names the
//! root the gateway serves the API at. Only the health function is built:
//! nothing here reaches AWS or the emulator.

use std::{collections::HashMap, net::SocketAddr, path::Path};

use health::docs::RENDERER;
use infra::{
    cdn::{self, LOCAL_CDN_PATH},
    rest::{self, RestGateway},
    template::Template,
};
use platform::cors::CorsConfig;

/// A gateway in front of the health function alone, configured as
/// `infra/scripts/env.sh` configures `make dev`.
async fn gateway() -> SocketAddr {
    let mut template =
        Template::load(Path::new(env!("CARGO_MANIFEST_DIR")).join("../template.yaml"))
            .expect("template.yaml");
    template
        .routes
        .retain(|route| route.function == "HealthFunction");
    let env = |name: &str| match name {
        "TABLE_NAME" | "BUCKET_NAME" => Some("unused".to_owned()),
        "DOCS_ASSETS_URL" => Some(LOCAL_CDN_PATH.to_owned()),
        _ => None,
    };
    let sdk = aws_config::SdkConfig::builder()
        .behavior_version(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new("us-east-1"))
        .build();
    let health = health::build(&env, &sdk).expect("health's configuration");
    let functions = HashMap::from([("HealthFunction".to_owned(), health)]);
    let gateway = RestGateway::new(
        &template,
        functions,
        rest::LOCAL_STAGE,
        CorsConfig::default(),
    )
    .unwrap_or_else(|err| panic!("{err}"));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let address = listener.local_addr().expect("address");
    tokio::spawn(rest::serve(listener, gateway));
    address
}

/// The value of the `src` attribute of the page's one external script.
fn script_src(html: &str) -> &str {
    let (_, rest) = html
        .split_once("<script src=\"")
        .expect("an external script");
    rest.split_once('"').expect("a closed attribute").0
}

#[tokio::test]
async fn the_docs_page_loads_the_renderer_from_the_gateway_itself() {
    let address = gateway().await;
    let client = reqwest::Client::new();
    let page = client
        .get(format!("http://{address}/docs"))
        .send()
        .await
        .expect("the gateway answers");
    assert_eq!(page.status(), 200);
    let policy = page.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_owned();
    let html = page.text().await.unwrap();

    let src = script_src(&html);
    assert_eq!(src, format!("{LOCAL_CDN_PATH}/{}", RENDERER.cdn_path()));
    assert!(
        html.contains(&format!(
            r#"integrity="{}" crossorigin="anonymous""#,
            RENDERER.integrity
        )),
        "the integrity check stays on locally: {html}"
    );
    // A path on the page's own origin is allowed as 'self', and no other
    // host is.
    let script_src_directive = policy
        .split(';')
        .map(str::trim)
        .find(|directive| directive.starts_with("script-src "))
        .expect("a script-src");
    assert!(script_src_directive.ends_with(" 'self'"), "{policy}");
    assert!(!policy.contains("://"), "{policy}");

    // What the page points at is the installed file, byte for byte.
    let asset = client
        .get(format!("http://{address}{src}"))
        .send()
        .await
        .expect("the gateway answers");
    assert_eq!(asset.status(), 200);
    assert_eq!(
        asset.headers()["content-type"],
        "application/javascript; charset=utf-8"
    );
    assert_eq!(asset.headers()["access-control-allow-origin"], "*");
    let bytes = asset.bytes().await.unwrap();
    let installed = std::fs::read(
        cdn::docs_dir()
            .join("node_modules")
            .join(RENDERER.package)
            .join(RENDERER.file),
    )
    .expect("the installed renderer");
    assert!(
        bytes == installed,
        "the served bytes differ from the installed file"
    );
}

#[tokio::test]
async fn the_local_cdn_serves_only_the_pinned_package() {
    let address = gateway().await;
    let client = reqwest::Client::new();
    for path in [
        format!("{}@0.0.1/{}", RENDERER.package, RENDERER.file),
        format!("{}/{}", RENDERER.package, RENDERER.file),
        // Encoded, so that the client's URL parser leaves it to the gateway.
        format!(
            "{}@{}/..%2F..%2Fpackage.json",
            RENDERER.package, RENDERER.version
        ),
        format!("{}@{}/no-such-file.js", RENDERER.package, RENDERER.version),
    ] {
        let response = client
            .get(format!("http://{address}{LOCAL_CDN_PATH}/{path}"))
            .send()
            .await
            .expect("the gateway answers");
        assert_eq!(response.status(), 404, "{path}");
    }
}

#[tokio::test]
async fn the_document_served_locally_is_for_the_root() {
    let address = gateway().await;
    let response = reqwest::get(format!("http://{address}/openapi.json"))
        .await
        .expect("the gateway answers");
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "application/json");
    let document: serde_json::Value = response.json().await.unwrap();
    // The gateway serves at the root, under stage `local`: "try it" must
    // call `/api/v1/...` here, not `/local/api/v1/...`.
    assert_eq!(document["servers"], serde_json::json!([{ "url": "/" }]));
}

//! The operator console as a browser meets it: the page and its assets
//! from the running server, without credentials, with their content types
//! and the strict Content-Security-Policy; unknown files are 404 problems.

use crate::support::TestApp;

const CSP: &str = "default-src 'self'; img-src 'self' data: blob:; media-src 'self' blob:; style-src 'self'; script-src 'self'; connect-src 'self'; frame-ancestors 'none'";

fn header(res: &reqwest::Response, name: &str) -> String {
    res.headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_page_and_its_assets_are_served_with_their_policy() {
    let app = TestApp::start().await;
    for (path, content_type, needle) in [
        ("/console", "text/html; charset=utf-8", "/console/app.js"),
        ("/console/", "text/html; charset=utf-8", "/console/app.js"),
        (
            "/console/app.js",
            "text/javascript; charset=utf-8",
            "import",
        ),
        (
            "/console/views/call.js",
            "text/javascript; charset=utf-8",
            "recording",
        ),
        ("/console/style.css", "text/css; charset=utf-8", ":root"),
        ("/console/icon.svg", "image/svg+xml", "<svg"),
    ] {
        let res = app.client.get(app.url(path)).send().await.expect("send");
        assert_eq!(res.status(), 200, "{path}");
        assert_eq!(header(&res, "content-type"), content_type, "{path}");
        assert_eq!(header(&res, "content-security-policy"), CSP, "{path}");
        assert_eq!(header(&res, "x-content-type-options"), "nosniff", "{path}");
        assert_eq!(header(&res, "cache-control"), "no-cache", "{path}");
        let etag = header(&res, "etag");
        assert!(etag.starts_with('"'), "{path}: etag {etag:?}");
        let body = res.text().await.expect("body");
        assert!(body.contains(needle), "{path} holds {needle:?}");
        // A browser revalidating with the tag gets a 304.
        let again = app
            .client
            .get(app.url(path))
            .header("if-none-match", &etag)
            .send()
            .await
            .expect("send");
        assert_eq!(again.status(), 304, "{path}");
    }
    let res = app
        .client
        .get(app.url("/console/nope.js"))
        .send()
        .await
        .expect("send");
    assert_eq!(res.status(), 404);
    assert_eq!(header(&res, "content-type"), "application/problem+json");
    let res = app
        .client
        .post(app.url("/console"))
        .send()
        .await
        .expect("send");
    assert_eq!(res.status(), 405, "the page is read-only");
    app.stop().await;
}

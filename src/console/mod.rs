//! The operator console: a single-page web app served by talky itself at
//! `GET /console` (index) and `GET /console/{path}` (its assets).
//!
//! The page is plain HTML, CSS and ES modules under `src/console/assets/`,
//! embedded in the binary through one table ([`ASSETS`]): no build step,
//! nothing to install, one file to deploy, and nothing fetched from
//! another host at run time (a unit test scans the assets for external
//! URLs). The page holds no data and needs no credentials; everything it
//! shows comes from the authenticated REST API, called by the browser
//! with the key the operator typed (kept in the tab's `sessionStorage`).
//!
//! Every answer carries a strict `Content-Security-Policy` (only this
//! origin for scripts, styles, fetches; blob: for the recording and the
//! downloads the page builds; no framing), `X-Content-Type-Options:
//! nosniff`, `Cache-Control: no-cache` and an `ETag` over the bytes, so a
//! browser revalidates (304) instead of running a stale script after an
//! upgrade. Assets are looked up by exact path in the table, so `..` or
//! an encoded variant of it can only miss (404, problem+json like the
//! rest of the API). The console is not part of the operators' OpenAPI
//! document: it is a page, not an API.

use std::sync::LazyLock;

use sha2::{Digest, Sha256};
use warp::Filter;
use warp::filters::BoxedFilter;
use warp::http::{HeaderValue, StatusCode, header};
use warp::reply::Response;

use crate::http::problem::ApiError;

/// The policy every console answer carries: scripts, styles and fetches
/// from this origin only; images also as `data:`/`blob:`, media as
/// `blob:` (the recording is fetched with the key and played from an
/// object URL); never framed.
pub const CSP: &str = "default-src 'self'; img-src 'self' data: blob:; media-src 'self' blob:; style-src 'self'; script-src 'self'; connect-src 'self'; frame-ancestors 'none'";

/// One embedded file of the console.
#[derive(Debug)]
pub struct Asset {
    /// Path under `/console/` (the index is also served at `/console`).
    pub path: &'static str,
    /// The file as committed.
    pub bytes: &'static [u8],
}

macro_rules! assets {
    ($($path:literal),* $(,)?) => {
        &[$(Asset { path: $path, bytes: include_bytes!(concat!("assets/", $path)) }),*]
    };
}

/// Every file the console serves. A new file under `assets/` is served
/// only once it is listed here (and the unit tests then check it).
pub const ASSETS: &[Asset] = assets![
    "index.html",
    "style.css",
    "icon.svg",
    "app.js",
    "api.js",
    "dom.js",
    "charts.js",
    "live.js",
    "metrics.js",
    "views/campaigns.js",
    "views/campaign.js",
    "views/call.js",
    "views/dnc.js",
    "views/webhooks.js",
    "views/live.js",
    "views/supervisor.js",
];

/// The index page's path in [`ASSETS`].
pub const INDEX: &str = "index.html";

/// The media type of a console file, by its extension; `None` for an
/// extension the console does not use (the tests refuse such an asset).
pub fn content_type(path: &str) -> Option<&'static str> {
    let ext = path.rsplit_once('.').map(|(_, ext)| ext)?;
    Some(match ext {
        "html" => "text/html; charset=utf-8",
        "js" => "text/javascript; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "svg" => "image/svg+xml",
        _ => return None,
    })
}

/// The entity tag of each asset (same order as [`ASSETS`]): a strong tag
/// from SHA-256 of the bytes, computed once, so it changes exactly when a
/// new binary ships a changed file.
static ETAGS: LazyLock<Vec<String>> = LazyLock::new(|| {
    ASSETS
        .iter()
        .map(|a| {
            let digest = Sha256::digest(a.bytes);
            let hex: String = digest[..12].iter().map(|b| format!("{b:02x}")).collect();
            format!("\"{hex}\"")
        })
        .collect()
});

/// The routes: `GET /console`, `GET /console/` and `GET /console/{path}`.
/// No credentials: the page holds no data.
pub fn routes() -> BoxedFilter<(Response,)> {
    let index = warp::path!("console")
        .and(warp::get())
        .and(warp::header::optional::<String>("if-none-match"))
        .map(|etag: Option<String>| serve(INDEX, etag.as_deref()));
    let asset = warp::path("console")
        .and(warp::path::tail())
        .and(warp::get())
        .and(warp::header::optional::<String>("if-none-match"))
        .map(|tail: warp::path::Tail, etag: Option<String>| {
            let path = match tail.as_str() {
                "" => INDEX,
                other => other,
            };
            serve(path, etag.as_deref())
        });
    index.or(asset).unify().boxed()
}

/// The answer for one asset path (as it appears in the URL, undecoded):
/// the file with its headers, a 304 when `if_none_match` names its tag,
/// or a 404 problem for any path not in the table.
pub fn serve(path: &str, if_none_match: Option<&str>) -> Response {
    let Some((i, asset)) = ASSETS.iter().enumerate().find(|(_, a)| a.path == path) else {
        let mut response = ApiError::NotFound(format!(
            "the console has no file {:?}",
            crate::phone::truncate_echo(path)
        ))
        .into_response();
        security_headers(&mut response);
        return response;
    };
    let etag = ETAGS.get(i).map(String::as_str).unwrap_or("");
    let matches = if_none_match.is_some_and(|given| {
        given
            .split(',')
            .map(|t| t.trim().trim_start_matches("W/"))
            .any(|t| t == etag || t == "*")
    });
    let mut response = if matches {
        let mut r = Response::new(Vec::new().into());
        *r.status_mut() = StatusCode::NOT_MODIFIED;
        r
    } else {
        let mut r = Response::new(asset.bytes.into());
        *r.status_mut() = StatusCode::OK;
        r.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static(
                content_type(asset.path).unwrap_or("application/octet-stream"),
            ),
        );
        r
    };
    let headers = response.headers_mut();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    if let Ok(value) = HeaderValue::from_str(etag) {
        headers.insert(header::ETAG, value);
    }
    security_headers(&mut response);
    response
}

/// CSP, nosniff and no referrer on every console answer, 404s included.
fn security_headers(response: &mut Response) {
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(r: &Response, name: header::HeaderName) -> &str {
        r.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }

    #[test]
    fn every_asset_is_served_with_its_type_and_the_policy() {
        for asset in ASSETS {
            let r = serve(asset.path, None);
            assert_eq!(r.status(), StatusCode::OK, "{}", asset.path);
            let expected = content_type(asset.path)
                .unwrap_or_else(|| panic!("{}: an extension the console serves", asset.path));
            assert_eq!(header(&r, header::CONTENT_TYPE), expected, "{}", asset.path);
            assert_eq!(header(&r, header::CONTENT_SECURITY_POLICY), CSP);
            assert_eq!(header(&r, header::X_CONTENT_TYPE_OPTIONS), "nosniff");
            assert_eq!(header(&r, header::CACHE_CONTROL), "no-cache");
            assert!(header(&r, header::ETAG).starts_with('"'), "{}", asset.path);
            assert!(!asset.bytes.is_empty(), "{} is empty", asset.path);
        }
        let types: Vec<_> = ASSETS.iter().filter_map(|a| content_type(a.path)).collect();
        for wanted in ["text/html", "text/javascript", "text/css", "image/svg+xml"] {
            assert!(types.iter().any(|t| t.starts_with(wanted)), "{wanted}");
        }
    }

    #[test]
    fn every_file_under_assets_is_in_the_table() {
        fn walk(dir: &std::path::Path, base: &std::path::Path, out: &mut Vec<String>) {
            for entry in std::fs::read_dir(dir).expect("read assets dir").flatten() {
                let path = entry.path();
                if path.is_dir() {
                    walk(&path, base, out);
                } else if let Ok(rel) = path.strip_prefix(base) {
                    out.push(rel.to_string_lossy().replace('\\', "/"));
                }
            }
        }
        let base = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src/console/assets");
        let mut files = Vec::new();
        walk(&base, &base, &mut files);
        for file in files {
            assert!(
                ASSETS.iter().any(|a| a.path == file),
                "{file} is under assets/ but not in ASSETS (it would not be served)"
            );
        }
    }

    #[test]
    fn unknown_paths_and_traversal_are_404_problems() {
        for path in [
            "nope.js",
            "../Cargo.toml",
            "views/../index.html",
            "%2e%2e/Cargo.toml",
            "..%2fsrc%2flib.rs",
            "/index.html",
            "index.html/",
            "views",
            "VIEWS/call.js",
        ] {
            let r = serve(path, None);
            assert_eq!(r.status(), StatusCode::NOT_FOUND, "{path}");
            assert_eq!(
                header(&r, header::CONTENT_TYPE),
                crate::http::problem::PROBLEM_JSON,
                "{path}"
            );
            assert_eq!(header(&r, header::CONTENT_SECURITY_POLICY), CSP);
        }
    }

    #[test]
    fn a_known_etag_is_not_modified() {
        let r = serve(INDEX, None);
        let etag = header(&r, header::ETAG).to_string();
        let again = serve(INDEX, Some(&etag));
        assert_eq!(again.status(), StatusCode::NOT_MODIFIED);
        assert_eq!(header(&again, header::ETAG), etag);
        let other = serve(INDEX, Some("\"0000\""));
        assert_eq!(other.status(), StatusCode::OK);
        let other = serve("app.js", Some(&etag));
        assert_eq!(other.status(), StatusCode::OK, "another file's tag");
    }

    /// XML namespace names are identifiers, never fetched: the SVG the
    /// charts draw must be created in the SVG namespace.
    const NAMESPACES: [&str; 2] = ["http://www.w3.org/2000/svg", "http://www.w3.org/1999/xlink"];

    /// Every absolute or protocol-relative URL in `text` that names a host
    /// (namespace names aside), with its line.
    fn external_urls(text: &str) -> Vec<(usize, String)> {
        let mut found = Vec::new();
        for (n, line) in text.lines().enumerate() {
            let lower = line.to_ascii_lowercase();
            let mut rest = lower.as_str();
            while let Some(at) = rest.find("//") {
                let prefix = &rest[..at];
                let before = prefix.chars().last();
                let after = &rest[at + 2..];
                // `http://x`, `https://x`, `ws://x`: a scheme with a host.
                let (with_scheme, url_start) = match prefix.strip_suffix(':') {
                    Some(p) => {
                        let start = p
                            .rfind(|c: char| !(c.is_ascii_alphanumeric() || "+.-".contains(c)))
                            .map_or(0, |i| i + 1);
                        (start < p.len(), start)
                    }
                    None => (false, at),
                };
                // `"//host/x"`, `url(//host)`, `'//host'`: protocol-relative.
                let relative = matches!(before, Some('"' | '\'' | '`' | '(' | '='))
                    && after.starts_with(|c: char| c.is_ascii_alphanumeric());
                if with_scheme || relative {
                    let end = after
                        .find(|c: char| c.is_whitespace() || "\"'`()<>".contains(c))
                        .unwrap_or(after.len());
                    let url = format!("{}//{}", &rest[url_start..at], &after[..end]);
                    if !NAMESPACES.iter().any(|ns| url == *ns) {
                        found.push((n + 1, url));
                    }
                }
                rest = &rest[at + 2..];
            }
        }
        found
    }

    #[test]
    fn the_scan_finds_what_it_should() {
        assert!(external_urls("const a = 1; // a comment // more").is_empty());
        assert!(external_urls("import { x } from './api.js';").is_empty());
        assert!(external_urls("<link href=\"/console/style.css\">").is_empty());
        assert!(
            external_urls("document.createElementNS('http://www.w3.org/2000/svg', 'g')").is_empty()
        );
        assert_eq!(
            external_urls("<script src=\"//cdn.example/x.js\">").len(),
            1
        );
        assert_eq!(
            external_urls("@import url(//fonts.example/f.css);").len(),
            1
        );
        assert_eq!(external_urls("fetch('https://api.example.com/x')").len(), 1);
        assert_eq!(external_urls("new WebSocket(\"wss://x.example\")").len(), 1);
        assert_eq!(external_urls("<a href=\"HTTP://X.EXAMPLE\">").len(), 1);
        assert_eq!(
            external_urls("// see http://example.com").len(),
            1,
            "comments too"
        );
    }

    /// The page must work without network access: no asset may name
    /// another host (CDN, fonts, analytics), not even in a comment.
    #[test]
    fn no_asset_references_an_external_host() {
        let mut offenders = Vec::new();
        for asset in ASSETS {
            let text = std::str::from_utf8(asset.bytes)
                .unwrap_or_else(|_| panic!("{} is not UTF-8 text", asset.path));
            for (line, url) in external_urls(text) {
                offenders.push(format!("{}:{line}: {url}", asset.path));
            }
        }
        assert!(offenders.is_empty(), "external references: {offenders:#?}");
    }

    /// The policy forbids inline script and style: the page must not
    /// depend on either (it would silently break in the browser).
    #[test]
    fn the_page_has_no_inline_script_or_style() {
        for asset in ASSETS.iter().filter(|a| a.path.ends_with(".html")) {
            let text = std::str::from_utf8(asset.bytes)
                .expect("utf-8")
                .to_ascii_lowercase();
            assert!(!text.contains("<style"), "{}: <style>", asset.path);
            assert!(!text.contains(" style="), "{}: style attribute", asset.path);
            assert!(
                !text.contains(" onclick="),
                "{}: inline handler",
                asset.path
            );
            for script in text.split("<script").skip(1) {
                let tag = script.split('>').next().unwrap_or("");
                assert!(tag.contains("src="), "{}: inline <script>", asset.path);
            }
        }
        for asset in ASSETS.iter().filter(|a| a.path.ends_with(".js")) {
            let text = std::str::from_utf8(asset.bytes).expect("utf-8");
            for banned in [
                "eval(",
                "new Function(",
                "setAttribute('style'",
                ".innerHTML =",
            ] {
                assert!(!text.contains(banned), "{}: {banned}", asset.path);
            }
        }
    }
}

//! `/metrics` of the HTTP layer: every request by route template, method
//! and status (`talky_http_requests_total`), and its time to the response
//! head (`talky_http_request_duration_seconds`): the REST API, health, the
//! console, the providers' webhook callbacks and the media socket upgrades
//! (101) alike.
//!
//! The route label is the template (`/api/v1/campaigns/{id}`), never the
//! raw path: ids would make a series per resource, and some segments are
//! secrets or personal data (a callback's key, a DNC phone number). A
//! path no route serves is `other`. [`record`] is the hook of a
//! `warp::log::custom` wrapper around all routes (`super::serve`): it sees
//! the path, not the route that matched, so [`route_template`] maps one to
//! the other from [`ROUTES`].

use warp::http::Method;

/// Counter of answered requests by `route`, `method` and `status`.
pub const REQUESTS: &str = "talky_http_requests_total";
/// Histogram of request time by `route` and `method`, seconds.
pub const DURATION: &str = "talky_http_request_duration_seconds";

/// Request time buckets, seconds.
pub const DURATION_BUCKETS_SECONDS: [f64; 11] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0,
];

/// The route label of a path no route serves.
pub const OTHER: &str = "other";

/// Every route the server serves, as a template: `{name}` stands for one
/// segment, a last `{*name}` for one or more. The API's templates are
/// those of `/openapi.json` (a test holds them equal).
pub const ROUTES: &[&str] = &[
    "/api/v1/admin/tenants",
    "/api/v1/api-keys",
    "/api/v1/api-keys/{id}",
    "/api/v1/calls",
    "/api/v1/calls/{id}",
    "/api/v1/calls/{id}/analyze",
    "/api/v1/calls/{id}/deliveries",
    "/api/v1/calls/{id}/recording",
    "/api/v1/campaigns",
    "/api/v1/campaigns/{id}",
    "/api/v1/campaigns/{id}/contacts",
    "/api/v1/campaigns/{id}/results",
    "/api/v1/campaigns/{id}/summary",
    "/api/v1/campaigns/{id}/{command}",
    "/api/v1/dnc",
    "/api/v1/dnc/{phone}",
    "/api/v1/live",
    "/api/v1/supervisor/actors",
    "/api/v1/webhooks",
    "/api/v1/webhooks/{id}",
    "/api/v1/webhooks/{id}/deliveries",
    "/api/v1/webhooks/{id}/deliveries/{delivery}/replay",
    "/health",
    "/health/ready",
    "/metrics",
    "/openapi.json",
    "/console",
    "/console/{*asset}",
    "/vonage/answer/{call}",
    "/vonage/answer/{call}/{key}",
    "/vonage/events/{call}",
    "/vonage/events/{call}/{key}",
    "/vonage/media/{call}",
    "/twilio/status/{call}",
    "/twilio/status/{call}/{key}",
    "/twilio/media/{call}",
    "/twilio/media/{call}/{token}",
];

/// How `template` matches `segments`: `None` if it does not, else the
/// number of its literal segments (more literals: a closer match, so
/// `/campaigns/{id}/contacts` wins over `/campaigns/{id}/{command}`).
fn score(template: &str, segments: &[&str]) -> Option<usize> {
    let parts: Vec<&str> = template.split('/').filter(|s| !s.is_empty()).collect();
    let tail = parts.last().is_some_and(|p| p.starts_with("{*"));
    let fits = if tail {
        segments.len() >= parts.len()
    } else {
        segments.len() == parts.len()
    };
    if !fits {
        return None;
    }
    let mut literals = 0;
    for (part, segment) in parts.iter().zip(segments) {
        if part.starts_with('{') {
            continue;
        }
        if part != segment {
            return None;
        }
        literals += 1;
    }
    Some(literals)
}

/// The template of [`ROUTES`] that serves `path` (empty segments, as of a
/// trailing slash, ignored), or [`OTHER`].
pub fn route_template(path: &str) -> &'static str {
    let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    let mut best: Option<(usize, &'static str)> = None;
    for template in ROUTES {
        if let Some(literals) = score(template, &segments)
            && best.is_none_or(|(b, _)| literals > b)
        {
            best = Some((literals, template));
        }
    }
    best.map_or(OTHER, |(_, t)| t)
}

/// The method label: the standard methods by name, anything else `other`
/// (a client can send any token as a method).
pub fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        _ => OTHER,
    }
}

/// Records one answered request (the hook of `warp::log::custom`).
pub fn record(info: warp::log::Info<'_>) {
    let route = route_template(info.path());
    let method = method_label(info.method());
    metrics::counter!(
        REQUESTS,
        "route" => route,
        "method" => method,
        "status" => info.status().as_u16().to_string(),
    )
    .increment(1);
    metrics::histogram!(DURATION, "route" => route, "method" => method)
        .record(info.elapsed().as_secs_f64());
}

/// Gives the series their `# HELP` line.
pub fn describe() {
    metrics::describe_counter!(
        REQUESTS,
        metrics::Unit::Count,
        "HTTP requests answered, by route template (other: no route), method and status; webhook callbacks and media socket upgrades (101) included"
    );
    metrics::describe_histogram!(
        DURATION,
        metrics::Unit::Seconds,
        "Seconds from a request's arrival to its response head, by route template and method (a stream's or socket's life is not included)"
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_map_to_their_templates_and_unknown_ones_to_other() {
        let id = "0190a6c5-7b7e-7cc0-a2f3-1f0e8b2b9c11";
        for (path, want) in [
            ("/api/v1/campaigns", "/api/v1/campaigns"),
            (
                &format!("/api/v1/campaigns/{id}") as &str,
                "/api/v1/campaigns/{id}",
            ),
            (
                &format!("/api/v1/campaigns/{id}/contacts"),
                "/api/v1/campaigns/{id}/contacts",
            ),
            (
                &format!("/api/v1/campaigns/{id}/results"),
                "/api/v1/campaigns/{id}/results",
            ),
            (
                &format!("/api/v1/campaigns/{id}/start"),
                "/api/v1/campaigns/{id}/{command}",
            ),
            ("/api/v1/dnc/+14155550100", "/api/v1/dnc/{phone}"),
            (
                &format!("/api/v1/webhooks/{id}/deliveries/{id}/replay"),
                "/api/v1/webhooks/{id}/deliveries/{delivery}/replay",
            ),
            ("/health", "/health"),
            ("/health/", "/health"),
            ("/health/ready", "/health/ready"),
            ("/metrics", "/metrics"),
            ("/console", "/console"),
            ("/console/views/supervisor.js", "/console/{*asset}"),
            (
                &format!("/vonage/events/{id}/s3cr3t"),
                "/vonage/events/{call}/{key}",
            ),
            (&format!("/vonage/media/{id}"), "/vonage/media/{call}"),
            (
                &format!("/twilio/media/{id}/tok"),
                "/twilio/media/{call}/{token}",
            ),
            (&format!("/twilio/status/{id}"), "/twilio/status/{call}"),
            ("/", OTHER),
            ("/nope", OTHER),
            ("/api/v1/campaigns/a/b/c", OTHER),
            ("/metrics/extra", OTHER),
        ] {
            assert_eq!(route_template(path), want, "{path}");
        }
    }

    #[test]
    fn every_documented_api_path_is_a_template() {
        use utoipa::OpenApi;
        let doc = super::super::openapi::ApiDoc::openapi();
        for path in doc.paths.paths.keys() {
            assert!(ROUTES.contains(&path.as_str()), "{path} missing in ROUTES");
            assert_eq!(route_template(path), path.as_str());
        }
    }

    #[test]
    fn odd_methods_are_one_label() {
        assert_eq!(method_label(&Method::GET), "GET");
        let odd = Method::from_bytes(b"BREW").unwrap_or(Method::TRACE);
        assert_eq!(method_label(&odd), OTHER);
    }
}

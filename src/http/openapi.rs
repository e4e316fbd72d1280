//! `/openapi.json`: the API description, generated from the handlers'
//! annotations and the DTO types, so it says what the server does.

use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};
use warp::Filter;
use warp::filters::BoxedFilter;
use warp::http::StatusCode;
use warp::reply::Response;

use super::problem::json_response;
use super::{
    admin, api_keys, calls, campaigns, contacts, dnc, health, recordings, results, supervisor,
    webhooks,
};

struct Security;

impl Modify for Security {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        let bearer = |desc: &str| {
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(desc.to_string()))
                    .build(),
            )
        };
        components.add_security_scheme("bearer", bearer("A tenant's API key (tk_...)"));
        components.add_security_scheme("admin", bearer("The admin token (TALKY_ADMIN_TOKEN)"));
        rate_limited(openapi);
    }
}

/// Every route a tenant's API key opens may answer 429 (the key's request
/// rate, `[api]`), with `Retry-After`.
fn rate_limited(openapi: &mut utoipa::openapi::OpenApi) {
    use utoipa::openapi::{
        ContentBuilder, HeaderBuilder, Ref, ResponseBuilder, path::Operation,
        schema::ObjectBuilder, schema::Type,
    };
    let response = ResponseBuilder::new()
        .description("This API key is over its request rate; retry after Retry-After seconds")
        .header(
            "Retry-After",
            HeaderBuilder::new()
                .schema(ObjectBuilder::new().schema_type(Type::Integer))
                .description(Some("Seconds to wait"))
                .build(),
        )
        .content(
            super::problem::PROBLEM_JSON,
            ContentBuilder::new()
                .schema(Some(Ref::from_schema_name("Problem")))
                .build(),
        )
        .build();
    let by_key = |op: &Operation| {
        op.security.as_ref().is_some_and(|reqs| {
            serde_json::to_value(reqs)
                .ok()
                .and_then(|v| v.as_array().cloned())
                .is_some_and(|reqs| reqs.iter().any(|r| r.get("bearer").is_some()))
        })
    };
    for item in openapi.paths.paths.values_mut() {
        for op in [
            &mut item.get,
            &mut item.post,
            &mut item.put,
            &mut item.patch,
            &mut item.delete,
        ]
        .into_iter()
        .flatten()
        {
            if by_key(op) {
                op.responses
                    .responses
                    .insert("429".into(), response.clone().into());
            }
        }
    }
}

/// The document.
#[derive(OpenApi)]
#[openapi(
    info(title = "talky", description = "Actor-based telephony runtime for AI outbound calling: operators' API."),
    modifiers(&Security),
    paths(
        admin::create_tenant,
        api_keys::list_keys, api_keys::create_key, api_keys::revoke_key,
        campaigns::list_campaigns, campaigns::create_campaign, campaigns::get_campaign,
        campaigns::update_campaign, campaigns::delete_campaign, campaigns::command_campaign,
        campaigns::campaign_summary,
        contacts::upload_contacts, contacts::list_contacts,
        dnc::list_dnc, dnc::add_dnc, dnc::remove_dnc,
        calls::list_calls, calls::get_call, calls::analyze_call, recordings::get_recording,
        results::export,
        webhooks::list_webhooks, webhooks::create_webhook, webhooks::get_webhook,
        webhooks::delete_webhook, webhooks::list_deliveries, webhooks::replay_delivery,
        webhooks::call_deliveries,
        health::health, health::ready, supervisor::metrics, supervisor::actors,
    ),
    tags(
        (name = "admin", description = "Tenants (admin token)"),
        (name = "api-keys", description = "Operator API keys"),
        (name = "campaigns", description = "Campaigns and their lifecycle"),
        (name = "contacts", description = "Contact lists"),
        (name = "dnc", description = "Do-not-call list"),
        (name = "calls", description = "Call records, turns, events"),
        (name = "webhooks", description = "Signed event deliveries to the tenant's endpoints (Standard Webhooks)"),
        (name = "health", description = "Liveness and readiness"),
    )
)]
pub struct ApiDoc;

/// The route.
pub fn routes() -> BoxedFilter<(Response,)> {
    let doc = ApiDoc::openapi();
    warp::path!("openapi.json")
        .and(warp::get())
        .map(move || json_response(StatusCode::OK, &doc))
        .boxed()
}

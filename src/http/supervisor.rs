//! Supervisor endpoints (admin token): `GET /metrics` (Prometheus text)
//! and `GET /api/v1/supervisor/actors` (the live actor tree as JSON).

use std::collections::BTreeMap;

use warp::Filter;
use warp::filters::BoxedFilter;
use warp::http::{HeaderValue, StatusCode};
use warp::reply::Response;

use crate::providers::telephony::split_leg;

use super::problem::{ApiError, Problem};
use super::{Ctx, auth, respond, with_ctx};

/// The routes.
pub fn routes(ctx: Ctx) -> BoxedFilter<(Response,)> {
    let metrics_route = warp::path!("metrics")
        .and(warp::get())
        .and(auth::admin(ctx.clone()))
        .and(with_ctx(ctx.clone()))
        .and_then(|ctx: Ctx| respond(ctx, metrics()));
    let actors = warp::path!("api" / "v1" / "supervisor" / "actors")
        .and(warp::get())
        .and(auth::admin(ctx.clone()))
        .and(with_ctx(ctx))
        .and_then(|ctx: Ctx| respond(ctx.clone(), actors(ctx)));
    metrics_route.or(actors).unify().boxed()
}

/// The live actor tree: the root's children with restart counts, the
/// dialer with each live call (campaign name, masked number, status, age,
/// duration once answered, turns, the telephony provider, children naming
/// the provider in use with their restarts, messages handled), each
/// running campaign by name with its counters (admin token).
#[utoipa::path(get, path = "/api/v1/supervisor/actors", tag = "health",
    security(("admin" = [])),
    responses(
        (status = 200, description = "The actor tree: `children` (the root's, with `restarts`); `dialer` with `calls`, each with `campaign_name`, `number` (masked: `+44 •••• ••77`), `status`, `age_secs`, `duration_secs` (null until answered), telephony `provider`, and `children` (`kind` stt/llm/tts, `provider` by name, `position`, `restarts`, `running`); `campaigns` with `name`; `calls_by_provider`", body = Object),
        (status = 401, description = "No or wrong admin token", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "No actor tree runs here", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn actors(ctx: Ctx) -> Result<Response, ApiError> {
    let root = ctx
        .root
        .as_ref()
        .ok_or_else(|| ApiError::Unavailable("no actor tree runs in this process".into()))?;
    super::ok(StatusCode::OK, &SupervisorView::gather(root).await)
}

/// How long each actor may take to answer for its part of the tree.
const SNAPSHOT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(1);

/// The actor tree as supervisors read it: each live call names the
/// telephony provider holding its leg, and the calls are counted per
/// provider (`dialing` for those whose leg is not known yet).
#[derive(Debug, serde::Serialize)]
pub struct SupervisorView {
    /// The tree.
    #[serde(flatten)]
    pub tree: talky_actors::tree::TreeSnapshot,
    /// Live calls per provider.
    pub calls_by_provider: BTreeMap<&'static str, u32>,
}

impl SupervisorView {
    /// Asks the actor tree under `root` ([`talky_actors::tree::snapshot`])
    /// and names it: the endpoint and the live feed's `tree` event send
    /// the same.
    pub async fn gather(root: &ractor::ActorRef<talky_actors::root::RootMsg>) -> Self {
        Self::of(talky_actors::tree::snapshot(root, SNAPSHOT_TIMEOUT).await)
    }

    /// Names each call's provider from its leg id
    /// ([`crate::providers::telephony::split_leg`]) and counts them.
    pub fn of(mut tree: talky_actors::tree::TreeSnapshot) -> Self {
        let mut calls_by_provider = BTreeMap::new();
        for call in tree.dialer.iter_mut().flat_map(|d| d.calls.iter_mut()) {
            let provider = call.leg.as_ref().map(|leg| split_leg(leg).0.as_str());
            call.provider = provider.map(str::to_owned);
            *calls_by_provider
                .entry(provider.unwrap_or("dialing"))
                .or_insert(0) += 1;
        }
        Self {
            tree,
            calls_by_provider,
        }
    }
}

/// Prometheus metrics of this process (admin token).
#[utoipa::path(get, path = "/metrics", tag = "health",
    security(("admin" = [])),
    responses(
        (status = 200, description = "Prometheus text exposition", body = String, content_type = "text/plain"),
        (status = 401, description = "No or wrong admin token", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn metrics() -> Result<Response, ApiError> {
    let mut response = Response::new(crate::metrics::handle().render().into());
    *response.status_mut() = StatusCode::OK;
    response.headers_mut().insert(
        warp::http::header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4"),
    );
    Ok(response)
}

#[cfg(test)]
mod tests {
    use talky_actors::call::CallSnapshot;
    use talky_actors::call::lifecycle::CallStatus;
    use talky_actors::dialer::DialerSnapshot;
    use talky_actors::ids::{CallId, CampaignId, ContactId, TenantId};
    use talky_actors::ports::{CallKey, ProviderCallId};
    use talky_actors::tree::TreeSnapshot;

    use super::*;
    use crate::providers::telephony::{TelephonyProvider, leg_id};

    fn call(leg: Option<ProviderCallId>) -> CallSnapshot {
        CallSnapshot {
            key: CallKey {
                tenant: TenantId::new(),
                campaign: CampaignId::new(),
                contact: ContactId::new(),
                call: CallId::new(),
                attempt: 1,
            },
            campaign_name: "spring reminders".into(),
            number: talky_actors::mask::mask_phone("+442079460977"),
            status: CallStatus::Conversation,
            age_secs: 42,
            duration_secs: Some(30),
            turns: 0,
            agent_speaking: false,
            children: Vec::new(),
            messages: 0,
            telephony: "vonage_then_twilio".into(),
            leg,
            provider: None,
        }
    }

    #[test]
    fn calls_name_their_provider_and_are_counted_per_provider() {
        let tree = TreeSnapshot {
            dialer: Some(DialerSnapshot {
                live: 4,
                queued: 0,
                dialled: 4,
                crashed: 0,
                not_placed: 0,
                draining: false,
                calls: vec![
                    call(Some(leg_id(
                        TelephonyProvider::Vonage,
                        "63f61863-4a51-4f6b-86e1-46edebcf9356",
                    ))),
                    call(Some(leg_id(
                        TelephonyProvider::Twilio,
                        "CA0123456789abcdef0123456789abcdef",
                    ))),
                    call(Some(leg_id(
                        TelephonyProvider::Twilio,
                        "CAfedcba9876543210fedcba9876543210",
                    ))),
                    call(None),
                ],
            }),
            ..TreeSnapshot::default()
        };
        let view = serde_json::to_value(SupervisorView::of(tree)).expect("json");
        assert_eq!(
            view["calls_by_provider"],
            serde_json::json!({"dialing": 1, "twilio": 2, "vonage": 1})
        );
        let calls = view["dialer"]["calls"].as_array().expect("calls");
        let providers: Vec<_> = calls.iter().map(|c| c["provider"].clone()).collect();
        assert_eq!(
            providers,
            [
                serde_json::json!("vonage"),
                serde_json::json!("twilio"),
                serde_json::json!("twilio"),
                serde_json::Value::Null
            ]
        );
        assert_eq!(calls[1]["telephony"], "vonage_then_twilio");
        assert_eq!(calls[0]["campaign_name"], "spring reminders");
        assert_eq!(calls[0]["number"], "+44 •••• ••77");
        assert_eq!(
            (
                calls[0]["age_secs"].clone(),
                calls[0]["duration_secs"].clone()
            ),
            (serde_json::json!(42), serde_json::json!(30))
        );
        assert_eq!(view["dialer"]["live"], 4, "the tree is still there");
    }
}

//! answer_url mode (spec §1.2, §1.4): instead of an inline NCCO, the
//! create-call body names `{public}/vonage/answer/{call_id}/{key}` and Vonage
//! fetches the NCCO from it when the callee answers. The NCCO served there
//! (by `crate::http::answer`) is the same [`connect_ncco`](super::ncco::connect_ncco)
//! the inline mode sends, with a media token minted at answer time.

use serde::{Deserialize, Serialize};

use super::ncco::{CreateCall, NccoError, public_base};

/// How a created call gets its NCCO.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AnswerMode {
    /// The NCCO travels inline in `POST /v1/calls` (no answer round trip).
    #[default]
    Inline,
    /// Vonage fetches it from our answer webhook (`GET`) on answer, so the
    /// media token only exists once the call is answered.
    AnswerUrl,
}

/// Answer webhook URL of a call: `{public}/vonage/answer/{call_id}/{key}`,
/// `key` the call's callback key ([`super::callback::CallbackKey::for_call`]).
pub fn answer_url(public_url: &str, call: &str, key: &str) -> Result<String, NccoError> {
    Ok(format!(
        "{}/vonage/answer/{call}/{key}",
        public_base(public_url)?
    ))
}

/// Turns an inline create-call body into its answer_url form: `ncco`
/// dropped, `answer_url` + `answer_method: GET` set; everything else
/// (events, timers, machine detection) kept.
pub fn use_answer_url(
    mut body: CreateCall,
    public_url: &str,
    call: &str,
    url_key: &str,
) -> Result<CreateCall, NccoError> {
    body.ncco = None;
    body.answer_url = Some(vec![answer_url(public_url, call, url_key)?]);
    body.answer_method = Some("GET".into());
    Ok(body)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::providers::vonage::ncco::{MachineDetection, create_call};
    use std::time::Duration;
    use talky_actors::ids::CallId;
    use talky_actors::ports::PlaceCall;

    #[test]
    fn answer_url_body_has_no_ncco_and_keeps_the_rest() {
        let call = CallId::new();
        let req = PlaceCall {
            call,
            to: "+447700900000".into(),
            from: "+447700900001".into(),
            ringing_timeout: Duration::from_secs(30),
            max_duration: Duration::from_secs(900),
            machine_detection: true,
            media_token: "tok".into(),
        };
        let inline = create_call(
            &req,
            "https://d.example.com/",
            "k",
            MachineDetection::default(),
            16_000,
        )
        .expect("inline");
        let body = use_answer_url(
            inline.clone(),
            "https://d.example.com/",
            &call.to_string(),
            "k",
        )
        .expect("answer");
        let v = serde_json::to_value(&body).expect("json");
        assert!(v.get("ncco").is_none(), "{v}");
        assert_eq!(
            v["answer_url"],
            serde_json::json!([format!("https://d.example.com/vonage/answer/{call}/k")])
        );
        assert_eq!(v["answer_method"], "GET");
        assert!(!v.to_string().contains("tok"), "no media token in the body");
        assert_eq!(
            v["event_url"],
            serde_json::json!([format!("https://d.example.com/vonage/events/{call}/k")])
        );
        assert_eq!(v["ringing_timer"], 30);
        assert_eq!(v["length_timer"], 900);
        assert!(v.get("advanced_machine_detection").is_some());
        let inline_v = serde_json::to_value(&inline).expect("json");
        assert!(inline_v.get("answer_url").is_none());
        assert!(inline_v.get("ncco").is_some());
    }

    #[test]
    fn answer_url_needs_an_http_public_url() {
        assert!(answer_url("ftp://x", "c", "k").is_err());
        assert_eq!(
            answer_url("http://127.0.0.1:8080", "c", "k").expect("url"),
            "http://127.0.0.1:8080/vonage/answer/c/k"
        );
    }

    #[test]
    fn mode_names_in_config() {
        let m: AnswerMode = serde_json::from_str("\"answer_url\"").expect("mode");
        assert_eq!(m, AnswerMode::AnswerUrl);
        assert_eq!(AnswerMode::default(), AnswerMode::Inline);
    }
}

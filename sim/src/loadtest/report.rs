//! The benchmark's figures: percentiles, the JSON report and its markdown
//! table.

use serde::{Deserialize, Serialize};

use super::procfs::Machine;

/// p50/p95/p99 of a sample (nearest rank), and how many values.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct Pcts {
    /// Values.
    pub count: usize,
    /// Median.
    pub p50: Option<f64>,
    /// 95th percentile.
    pub p95: Option<f64>,
    /// 99th percentile.
    pub p99: Option<f64>,
}

/// Nearest-rank percentile `p` (0-100) of sorted `v`.
fn rank(v: &[f64], p: f64) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    let i = ((p / 100.0) * v.len() as f64).ceil() as usize;
    v.get(i.clamp(1, v.len()) - 1).copied()
}

impl Pcts {
    /// Percentiles of `values` (any order; NaN dropped).
    pub fn of(values: &[f64]) -> Self {
        let mut v: Vec<f64> = values.iter().copied().filter(|x| !x.is_nan()).collect();
        v.sort_by(f64::total_cmp);
        Self {
            count: v.len(),
            p50: rank(&v, 50.0),
            p95: rank(&v, 95.0),
            p99: rank(&v, 99.0),
        }
    }

    /// Each percentile minus `base`.
    pub fn minus(&self, base: f64) -> Self {
        Self {
            count: self.count,
            p50: self.p50.map(|x| x - base),
            p95: self.p95.map(|x| x - base),
            p99: self.p99.map(|x| x - base),
        }
    }
}

/// One stage of the turn: measured, what the emulators were told, and the
/// difference (what talky added).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Stage {
    /// `call_turns` column.
    pub column: String,
    /// Measured, ms.
    pub measured: Pcts,
    /// Latency configured in the emulators for this stage, ms.
    pub configured_ms: f64,
    /// Measured minus configured, ms.
    pub added: Pcts,
}

/// Calls: expected against what happened.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct CallCounts {
    /// Contacts in the campaign.
    pub expected: u64,
    /// Calls the emulator of the run's telephony was asked to place.
    pub placed: u64,
    /// Of those, media sockets opened.
    pub answered: u64,
    /// Calls stored `finished` by talky.
    pub finished: u64,
    /// Finished with outcome `completed`.
    pub completed: u64,
    /// Calls not finished, or finished `failed` / `provider_error`, or
    /// carried by another provider than the run's telephony.
    pub errors: u64,
    /// Outcomes and their counts.
    pub outcomes: Vec<(String, u64)>,
    /// The provider talky stored on the calls (`calls.provider`) and how
    /// many: all of them the run's telephony when it went as planned.
    #[serde(default)]
    pub providers: Vec<(String, u64)>,
}

/// talky's resources while every call was live.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Steady {
    /// All N calls were live at once.
    pub reached: bool,
    /// Length of the window, s.
    pub seconds: f64,
    /// Mean live calls over the window.
    pub live_mean: f64,
    /// talky's CPU, % of one core.
    pub cpu_pct_core: f64,
    /// Per live call, % of one core.
    pub cpu_pct_core_per_call: f64,
    /// RSS before the campaign started, KiB.
    pub rss_idle_kib: u64,
    /// Mean RSS over the window, KiB.
    pub rss_steady_kib: u64,
    /// (steady - idle) / live calls, KiB.
    pub rss_per_call_kib: f64,
    /// The same for anonymous memory only (`RssAnon`: heap and stacks;
    /// without the binary's pages, which grow as more of its code runs).
    #[serde(default)]
    pub anon_per_call_kib: f64,
    /// Seconds from the campaign's start until the window opened (all N
    /// live, or the ramp given up on).
    pub ramp_s: f64,
    /// `talky-sim sim`'s CPU over the same window, % of one core (the
    /// emulators share the machine: with talky's it shows saturation).
    pub sim_cpu_pct_core: f64,
    /// The whole machine's busy CPU over the window, % of one core (all
    /// processes: talky, sim, PostgreSQL, the driver); 100 x CPUs is full.
    pub machine_cpu_pct_core: f64,
}

impl Steady {
    /// talky's CPU per live call as milliseconds of CPU per second of
    /// call (1 % of a core is 10 ms/s).
    pub fn cpu_ms_per_call_second(&self) -> f64 {
        self.cpu_pct_core_per_call * 10.0
    }
}

/// Gaps the callees heard in the agent's speech.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Underruns {
    /// Gaps inside agent utterances.
    pub gaps: u64,
    /// Their length, 20 ms frames.
    pub gap_frames: u64,
    /// Agent frames played.
    pub agent_frames: u64,
}

/// Barge-in reaction.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct BargeIn {
    /// Callee lines begun while the agent spoke.
    pub attempts: u64,
    /// Callee speech start -> `clear` received, ms.
    pub reaction: Pcts,
    /// When the speech-start event can first be known after the first
    /// frame of speech was sent, ms: the barge-in minimum of speech less
    /// one frame (its last frame is sent that long after its first).
    pub min_speech_ms: f64,
    /// Speech-start event -> `clear` received, ms: from the callee frame
    /// with which talky's VAD, run by the emulator on the same frames,
    /// declares speech.
    pub added: Pcts,
}

/// The whole report.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Report {
    /// Where it ran.
    pub machine: Option<Machine>,
    /// Concurrent calls asked for.
    pub calls: u64,
    /// Steady-state seconds asked for.
    pub duration_s: u64,
    /// Calls placed per second.
    pub cps: f64,
    /// Share of callees who interrupt.
    pub barge_share: f64,
    /// The campaign's telephony (`vonage` or `twilio`): the provider, and
    /// its emulator, that carried the calls.
    #[serde(default = "vonage")]
    pub telephony: String,
    /// Calls.
    pub counts: CallCounts,
    /// Resources.
    pub steady: Steady,
    /// Per-stage latency (agent turns).
    pub stages: Vec<Stage>,
    /// Voice-to-voice, ms.
    pub voice_to_voice: Pcts,
    /// Playout gaps.
    pub underruns: Underruns,
    /// Barge-in.
    pub barge_in: BargeIn,
    /// Wall time of the whole run, s.
    pub wall_s: f64,
}

/// Runs from before the telephony was chosen were all Vonage's.
fn vonage() -> String {
    "vonage".into()
}

fn f(v: Option<f64>) -> String {
    v.map(|x| format!("{x:.1}")).unwrap_or_else(|| "-".into())
}

impl Report {
    /// The markdown table of the README.
    pub fn markdown(&self) -> String {
        let mut s = String::new();
        let m = self.machine.clone();
        let (nproc, model) = m
            .map(|m| (m.nproc, m.cpu_model))
            .unwrap_or((0, "unknown".into()));
        s.push_str(&format!(
            "N = {} calls on {}, {} s steady, {} CPS, barge-in share {:.0} %; machine: {} CPU ({})\n\n",
            self.calls,
            self.telephony,
            self.duration_s,
            self.cps,
            self.barge_share * 100.0,
            nproc,
            model
        ));
        s.push_str("| figure | value |\n|---|---|\n");
        let c = &self.counts;
        s.push_str(&format!(
            "| calls completed / expected | {} / {} (placed {}, answered {}, finished {}, errors {}) |\n",
            c.completed, c.expected, c.placed, c.answered, c.finished, c.errors
        ));
        let providers: Vec<String> = c
            .providers
            .iter()
            .map(|(p, n)| format!("{p} {n}"))
            .collect();
        s.push_str(&format!(
            "| telephony | {} (calls stored per provider: {}) |\n",
            self.telephony,
            if providers.is_empty() {
                "none".to_string()
            } else {
                providers.join(", ")
            }
        ));
        let st = &self.steady;
        s.push_str(&format!(
            "| steady state | {} ({:.1} s, {:.0} live calls) |\n",
            if st.reached {
                "all calls live"
            } else {
                "NOT reached"
            },
            st.seconds,
            st.live_mean
        ));
        s.push_str(&format!(
            "| talky CPU | {:.1} % of a core; {:.3} % per call ({:.2} ms CPU per call-second) |\n",
            st.cpu_pct_core,
            st.cpu_pct_core_per_call,
            st.cpu_ms_per_call_second()
        ));
        s.push_str(&format!(
            "| sim / machine CPU | sim {:.1} %, whole machine {:.1} % of a core (of {} %); ramp {:.1} s |\n",
            st.sim_cpu_pct_core,
            st.machine_cpu_pct_core,
            nproc * 100,
            st.ramp_s
        ));
        s.push_str(&format!(
            "| talky RSS | {} KiB idle, {} KiB steady; {:.1} KiB per call ({:.1} KiB anonymous) |\n",
            st.rss_idle_kib, st.rss_steady_kib, st.rss_per_call_kib, st.anon_per_call_kib
        ));
        for stage in &self.stages {
            s.push_str(&format!(
                "| added {} (ms, p50/p95/p99; configured {:.0}) | {} / {} / {} (n={}) |\n",
                stage.column,
                stage.configured_ms,
                f(stage.added.p50),
                f(stage.added.p95),
                f(stage.added.p99),
                stage.measured.count
            ));
        }
        s.push_str(&format!(
            "| voice-to-voice (ms, p50/p99) | {} / {} |\n",
            f(self.voice_to_voice.p50),
            f(self.voice_to_voice.p99)
        ));
        let u = &self.underruns;
        s.push_str(&format!(
            "| playout underruns (gaps mid-utterance) | {} gaps, {} frames of {} agent frames |\n",
            u.gaps, u.gap_frames, u.agent_frames
        ));
        let b = &self.barge_in;
        s.push_str(&format!(
            "| barge-in: speech start -> clear (ms, p50/p99) | {} / {} (n={} of {} attempts; at least {:.0}); after the speech-start event: {} / {} (n={}) |\n",
            f(b.reaction.p50),
            f(b.reaction.p99),
            b.reaction.count,
            b.attempts,
            b.min_speech_ms,
            f(b.added.p50),
            f(b.added.p99),
            b.added.count
        ));
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        let p = Pcts::of(&v);
        assert_eq!((p.p50, p.p95, p.p99), (Some(50.0), Some(95.0), Some(99.0)));
        assert_eq!(Pcts::of(&[]).p50, None);
        assert_eq!(Pcts::of(&[7.0]).p99, Some(7.0));
        assert_eq!(p.minus(10.0).p50, Some(40.0));
    }

    #[test]
    fn the_table_names_the_machine_and_every_figure() {
        let r = Report {
            calls: 10,
            telephony: "twilio".into(),
            counts: CallCounts {
                providers: vec![("twilio".into(), 10)],
                ..CallCounts::default()
            },
            steady: Steady {
                cpu_pct_core_per_call: 0.125,
                rss_per_call_kib: 99.5,
                ..Steady::default()
            },
            stages: vec![Stage {
                column: "stt_ms".into(),
                ..Stage::default()
            }],
            ..Report::default()
        };
        let md = r.markdown();
        assert!(md.contains("N = 10 calls on twilio"), "{md}");
        assert!(
            md.contains("| telephony | twilio (calls stored per provider: twilio 10) |"),
            "{md}"
        );
        assert!(
            md.contains("0.125 % per call (1.25 ms CPU per call-second)"),
            "{md}"
        );
        assert!(md.contains("99.5 KiB per call"), "{md}");
        assert!(md.contains("added stt_ms"), "{md}");
        assert!(md.contains("barge-in"), "{md}");
        assert!(md.contains("sim / machine CPU"), "{md}");
    }

    #[test]
    fn a_report_without_a_telephony_was_vonage() {
        let old = serde_json::to_value(Report::default()).expect("json");
        let mut old = old.as_object().cloned().expect("object");
        old.remove("telephony");
        let r: Report = serde_json::from_value(serde_json::Value::Object(old)).expect("parse");
        assert_eq!(r.telephony, "vonage");
    }
}

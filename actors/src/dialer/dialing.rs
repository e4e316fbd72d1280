//! What the dialer does: admits, queues and paces dials, places calls,
//! and ends each one exactly once (also a crashed one).

use std::sync::Arc;

use chrono::{DateTime, Utc};
use ractor::{Actor, ActorId, ActorRef};

use super::handle::call_name;
use super::msg::{DialReport, DialerMsg, NotPlacedWhy};
use super::ports::DialStore;
use super::state::queued_key;
use super::state::{DialerState, LiveCall, Queued};
use crate::call::lifecycle::EndCause;
use crate::call::{CallActor, CallArgs, CallMsg, CallPorts, CallReport, ReportSink};
use crate::ports::{CallKey, CallStore, Clock, TelephonyPort};

impl<P: CallPorts, D: DialStore> DialerState<P, D> {
    pub(crate) fn forward(&self, report: CallReport) {
        if let Some(campaign) = self.campaigns.get(&report.key.campaign) {
            (campaign.on_report)(DialReport::Ended(report));
        }
    }

    /// Why a queued dial must not be placed at `now`, if it must not: its
    /// campaign is gone from this dialer, or its contact's window closed
    /// while it waited (a dial can wait long, e.g. through a cluster
    /// outage).
    /// The clock is read only for a dial that has a deadline.
    pub(crate) fn unplaceable(&self, q: &Queued) -> Option<NotPlacedWhy> {
        if !self.campaigns.contains_key(&q.request.campaign) {
            return Some(NotPlacedWhy::CampaignGone);
        }
        let closed = |by: DateTime<Utc>| self.ports.clock.utc() >= by;
        if q.request.place_by.is_some_and(closed) {
            return Some(NotPlacedWhy::WindowClosed);
        }
        None
    }

    /// Drops every queued dial `drop` picks, as not placed.
    pub(crate) fn withdraw_where(&mut self, why: NotPlacedWhy, drop: impl Fn(&Queued) -> bool) {
        let queued = std::mem::take(&mut self.queue);
        for q in queued {
            if drop(&q) {
                self.not_placed(q, why);
            } else {
                self.queue.push_back(q);
            }
        }
    }

    /// Drops every queued dial that may not be placed now.
    pub(crate) fn prune_queue(&mut self) {
        let queued = std::mem::take(&mut self.queue);
        for q in queued {
            match self.unplaceable(&q) {
                Some(why) => self.not_placed(q, why),
                None => self.queue.push_back(q),
            }
        }
    }

    /// A queued dial is dropped without being placed: its room is freed at
    /// once; its intent is cancelled, and then its campaign told, in the
    /// background (told after the cancellation, so that a dial of the
    /// same attempt the campaign may send next does not meet the old
    /// intent). The campaign is told even when the cancellation failed:
    /// its claim must come back; the intent left behind shows the attempt
    /// as live until the reconciler finishes it.
    pub(crate) fn not_placed(&mut self, q: Queued, why: NotPlacedWhy) {
        let key = queued_key(&q);
        self.free(q.room);
        self.not_placed += 1;
        metrics::counter!(crate::metrics::DIALS_NOT_PLACED).increment(1);
        tracing::info!(campaign.id = %key.campaign, contact.id = %key.contact, attempt = key.attempt, ?why, "queued dial not placed");
        let sink = self
            .campaigns
            .get(&key.campaign)
            .map(|c| c.on_report.clone());
        let store = self.store.clone();
        let timeout = self.config.rpc_timeout;
        tokio::spawn(async move {
            match tokio::time::timeout(timeout, store.cancel_intent(key)).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => {
                    tracing::warn!(call.id = %key.call, error = %e, "dial intent not cancelled")
                }
                Err(_) => tracing::warn!(call.id = %key.call, "cancelling a dial intent timed out"),
            }
            match sink {
                Some(sink) => sink(DialReport::NotPlaced { key, why }),
                None => {
                    tracing::warn!(campaign.id = %key.campaign, "dial not placed for a campaign not configured here; its take-over will release it")
                }
            }
        });
    }

    /// Calls placed and not over.
    pub(crate) fn live_calls(&self) -> u32 {
        let n = self.live.values().filter(|c| c.room.is_some()).count();
        u32::try_from(n).unwrap_or(u32::MAX)
    }

    pub(crate) async fn pace(&mut self, myself: &ActorRef<DialerMsg>) {
        self.prune_queue();
        let now = self.ports.clock.now();
        while !self.queue.is_empty() {
            if !self.bucket.try_take(now) {
                if !self.pace_pending {
                    self.pace_pending = true;
                    let wait = self
                        .bucket
                        .next_available(now)
                        .saturating_duration_since(now);
                    myself.send_after(wait, || DialerMsg::Pace);
                }
                return;
            }
            if let Some(wait) = self.cluster_wait().await {
                self.pace_pending = true;
                myself.send_after(wait, || DialerMsg::Pace);
                return;
            }
            if let Some(queued) = self.queue.pop_front() {
                // Time passed while the cluster was asked.
                match self.unplaceable(&queued) {
                    Some(why) => self.not_placed(queued, why),
                    None => self.place(myself, queued).await,
                }
            }
        }
    }

    /// Spawns the call (its `pre_start` does no I/O) and tells it to dial.
    pub(crate) async fn place(&mut self, myself: &ActorRef<DialerMsg>, queued: Queued) {
        let Queued {
            request,
            intent,
            room,
        } = queued;
        let key = CallKey {
            tenant: request.tenant,
            campaign: request.campaign,
            contact: request.contact,
            call: intent.call,
            attempt: request.attempt,
        };
        let Some(campaign) = self.campaigns.get(&request.campaign) else {
            self.not_placed(
                Queued {
                    request,
                    intent,
                    room,
                },
                NotPlacedWhy::CampaignGone,
            );
            return;
        };
        let mut config = campaign.template.clone();
        config.to = request.phone.clone();
        config.media_token = intent.media_token;
        let me = myself.clone();
        let report: ReportSink = Arc::new(move |r| {
            let _ = me.cast(DialerMsg::CallEnded(r));
        });
        let args = CallArgs {
            key,
            config,
            ports: self.ports.clone(),
            report,
        };
        match Actor::spawn_linked(
            Some(call_name(key.call)),
            CallActor::<P>::new(),
            args,
            myself.get_cell(),
        )
        .await
        {
            Ok((actor, _)) => {
                let _ = actor.cast(CallMsg::Dial);
                self.dialled += 1;
                metrics::counter!(crate::metrics::DIALLED).increment(1);
                self.by_call.insert(key.call, actor.get_id());
                self.live.insert(
                    actor.get_id(),
                    LiveCall {
                        key,
                        actor,
                        room: Some(room),
                        reported: false,
                        stopped: false,
                    },
                );
            }
            Err(e) => {
                self.free(room);
                self.forward(CallReport {
                    key,
                    cause: EndCause::Failed(format!("the call could not start: {e}")),
                    callback_at: None,
                    do_not_call: false,
                    turns: 0,
                });
            }
        }
    }

    pub(crate) fn call_ended(&mut self, report: CallReport) {
        let Some(id) = self.by_call.get(&report.key.call).copied() else {
            return;
        };
        if let Some(call) = self.live.get_mut(&id) {
            if call.reported {
                return;
            }
            call.reported = true;
            let room = call.room.take();
            let stopped = call.stopped;
            if let Some(room) = room {
                self.free(room);
            }
            if stopped {
                self.remove(id);
            }
        }
        self.forward(report);
    }

    pub(crate) fn remove(&mut self, id: ActorId) {
        if let Some(call) = self.live.remove(&id) {
            self.by_call.remove(&call.key.call);
            if let Some(room) = call.room {
                self.free(room);
            }
        }
        self.gauges();
    }

    /// Live and queued calls, for the supervisor's dashboards.
    pub(crate) fn gauges(&self) {
        metrics::gauge!(crate::metrics::CALLS_ACTIVE).set(f64::from(self.admission.live()));
        metrics::gauge!(crate::metrics::DIAL_QUEUE).set(self.queue.len() as f64);
    }

    /// A call's actor died without finishing: record and report a failure
    /// for it, so its contact is retried and its room freed.
    pub(crate) fn call_crashed(&mut self, id: ActorId, why: String) {
        let Some(call) = self.live.get(&id) else {
            return;
        };
        if call.reported {
            self.remove(id);
            return;
        }
        let key = call.key;
        self.crashed += 1;
        metrics::counter!(crate::metrics::CALL_CRASHES).increment(1);
        tracing::error!(call.id = %key.call, campaign.id = %key.campaign, error = %why, "call actor crashed");
        self.remove(id);
        let store = self.ports.store.clone();
        let at = self.ports.clock.utc();
        let timeout = self.config.rpc_timeout;
        let reason = format!("call actor crashed: {why}");
        let stored = reason.clone();
        tokio::spawn(async move {
            let _ = tokio::time::timeout(timeout, store.finish(key, "failed", &stored, at)).await;
        });
        // The provider's leg may still be up, with nobody listening:
        // hang it up (a leg already gone counts as success).
        let dials = self.store.clone();
        let telephony = self.ports.telephony.clone();
        tokio::spawn(async move {
            let leg = tokio::time::timeout(timeout, dials.provider_call(key)).await;
            if let Ok(Ok(Some(leg))) = leg {
                match tokio::time::timeout(timeout, telephony.hang_up(leg)).await {
                    Ok(Ok(())) => {}
                    Ok(Err(e)) => {
                        tracing::warn!(call.id = %key.call, error = %e, "hang-up of a crashed call failed")
                    }
                    Err(_) => {
                        tracing::warn!(call.id = %key.call, "hang-up of a crashed call timed out")
                    }
                }
            }
        });
        self.forward(CallReport {
            key,
            cause: EndCause::Failed(reason),
            callback_at: None,
            do_not_call: false,
            turns: 0,
        });
    }
}

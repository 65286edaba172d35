//! The simulated workers and feedback: due messages go through the real `deliver_one` to the
//! simulated providers, and the providers' bounces and complaints come back through the
//! detector's entry points.

use crate::domain::{MessageStatus, RecipientState};
use crate::queue::deliver::deliver_one;
use crate::store::{Claimed, Recipient};

use super::super::summary::Outcome;
use super::Run;

impl Run<'_> {
    pub(super) fn claimed(&mut self, idx: usize) -> Claimed {
        self.msgs[idx].attempts += 1;
        let (_, raw, message_id_header) = self.render(idx);
        let m = &self.msgs[idx];
        let s = &self.sc.streams[m.stream];
        Claimed {
            id: format!("m{idx}"),
            tenant_id: self.tenant_ids[m.tenant].clone(),
            key_id: Some(s.key.get_ref().clone()),
            mail_from: s.content.from.clone(),
            recipients: m
                .recipients
                .iter()
                .map(|a| Recipient {
                    address: a.clone(),
                    state: RecipientState::Pending,
                })
                .collect(),
            raw,
            message_id_header,
            attempts: m.attempts,
            created_at: m.accepted_at,
            expires_at: m.accepted_at + self.sc.queue.expiry.0,
            in_doubt: false,
        }
    }

    /// The workers: up to `budget` attempts this step, due messages in order.
    pub(super) async fn deliver(&mut self, budget: u64) -> anyhow::Result<()> {
        let now = self.now();
        let due: Vec<(i64, usize)> = self.later.range(..(now + 1, 0)).map(|(k, _)| *k).collect();
        for k in due {
            if let Some(idx) = self.later.remove(&k) {
                self.ready.push_back(idx);
            }
        }
        for _ in 0..budget {
            let Some(idx) = self.ready.pop_front() else {
                break;
            };
            let claimed = self.claimed(idx);
            let c = deliver_one(claimed, &self.dispatch, &self.policy, &self.shared).await;
            self.contain().await?;
            if let Some(p) = &c.provider {
                self.msgs[idx].provider = Some(p.clone());
                if matches!(c.status, MessageStatus::Delivered | MessageStatus::Bounced) {
                    *self.ledger.entry(p.clone()).or_default() +=
                        self.msgs[idx].recipients.len() as u64;
                }
            }
            let m = &self.msgs[idx];
            let (stream, waited) = (m.stream, c.at - m.accepted_at);
            match c.status {
                MessageStatus::Held => {
                    let tag = c.held_by.unwrap_or_default();
                    self.hold(idx, tag, c.at);
                }
                MessageStatus::Deferred | MessageStatus::Queued | MessageStatus::Sending => {
                    self.later.insert((c.next_attempt_at, idx), idx);
                }
                MessageStatus::Delivered => {
                    self.tally
                        .done(stream, Outcome::Delivered, waited, c.provider.as_deref())
                }
                MessageStatus::Bounced => {
                    self.tally
                        .done(stream, Outcome::Bounced, waited, c.provider.as_deref())
                }
                _ => self
                    .tally
                    .done(stream, Outcome::Lost, waited, c.provider.as_deref()),
            }
        }
        Ok(())
    }

    /// Feedback whose time has come, through the detector's entry points, in time order.
    pub(super) async fn feedback(&mut self) -> anyhow::Result<()> {
        let now = self.now();
        let mut due = Vec::new();
        for p in &self.sims {
            let mut st = p.state.lock().unwrap_or_else(|e| e.into_inner());
            let (ready, wait): (Vec<_>, Vec<_>) = st.feedback.drain(..).partition(|f| f.at <= now);
            st.feedback = wait;
            due.extend(ready);
        }
        due.sort_by_key(|f| f.at);
        for f in due {
            // As the ingest does: the report's Message-ID finds the message, and with it the
            // key it came from and the provider that carried it.
            let sent = f
                .message
                .as_deref()
                .and_then(|id| {
                    id.strip_prefix("<m")?
                        .strip_suffix("@sim.test>")?
                        .parse()
                        .ok()
                })
                .and_then(|i: usize| self.msgs.get(i));
            let key = sent.map(|m| self.sc.streams[m.stream].key.get_ref().as_str());
            let provider = sent.and_then(|m| m.provider.as_deref());
            self.guard
                .feedback_about(f.tenant.as_deref(), key, provider, f.kind, 1);
            self.contain().await?;
        }
        Ok(())
    }
}

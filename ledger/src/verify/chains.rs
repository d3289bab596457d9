//! Walking the chains: from every head down to genesis (heights, `prev`, payloads, causes,
//! tombstone masks), then the events no chain reached (forks, truncation, strays).

use rustc_hash::{FxHashMap as HashMap, FxHashSet as HashSet};

use super::gather::Gathered;
use super::{Finding, Masked, Problem};
use crate::store::Head;
use crate::{Cid, StreamId};

impl Gathered {
    /// Walks every chain from its head; returns the chain position of every event reached.
    pub(super) fn walk_chains(
        &mut self,
        heads: &[(StreamId, Head)],
    ) -> HashMap<(StreamId, u64), Cid> {
        let mut chain: HashMap<(StreamId, u64), Cid> = HashMap::default();
        let mut findings = Vec::new();
        let mut masked = Vec::new();
        // Only chains with a tombstone need their payloads remembered.
        let with_tombstones: HashSet<StreamId> = self
            .tombstones
            .keys()
            .filter_map(|t| self.events.get(t).map(|ev| ev.stream.clone()))
            .collect();
        for (stream, head) in heads {
            let remember = with_tombstones.contains(stream);
            let mut found = |cid, height, problem| {
                findings.push(Finding {
                    cid: Some(cid),
                    stream: Some(stream.clone()),
                    height,
                    problem,
                })
            };
            // Masks of the tombstones met so far (walking down, so all of them later).
            let mut active: HashMap<Cid, Cid> = HashMap::default();
            // Every payload of the chain: its event's height, and whether that is a tombstone.
            let mut payloads: HashMap<Cid, (u64, bool)> = HashMap::default();
            let mut tombstones: Vec<(Cid, u64)> = Vec::new();
            let mut cur = head.cid;
            let mut expected_height = head.height;
            let mut from: Option<Cid> = None;
            loop {
                let Some(ev) = self.events.get(&cur) else {
                    if self.payloads.contains(&cur) {
                        found(
                            cur,
                            Some(expected_height),
                            Problem::NotAnEvent {
                                role: "prev",
                                from: from.unwrap_or(cur),
                            },
                        );
                    } else if !self.broken.contains(&cur) {
                        let role = if from.is_some() { "prev" } else { "head" };
                        found(cur, Some(expected_height), Problem::Missing { role, from });
                    }
                    break;
                };
                // A bad link is named by the event that holds it: the child (the head itself
                // when the head record is what points astray).
                let (linker, linker_height) = match from {
                    Some(child) => (child, expected_height + 1),
                    None => (cur, ev.height),
                };
                if &ev.stream != stream {
                    let problem = Problem::WrongStream {
                        expected: stream.clone(),
                        found: ev.stream.clone(),
                    };
                    found(linker, Some(linker_height), problem);
                    break;
                }
                if from.is_none() && ev.height != head.height {
                    found(
                        cur,
                        Some(ev.height),
                        Problem::HeadMismatch {
                            recorded: head.height,
                            found: ev.height,
                        },
                    );
                } else if ev.height != expected_height {
                    found(
                        linker,
                        Some(linker_height),
                        Problem::HeightGap {
                            expected: expected_height,
                            found: ev.height,
                        },
                    );
                }
                chain.insert((stream.clone(), ev.height), cur);
                if let Some(p) = ev.payload {
                    if remember {
                        payloads.insert(p, (ev.height, ev.tombstone.is_some()));
                    }
                    let stored = self.payloads.contains(&p) || self.events.contains_key(&p);
                    match active.get(&p) {
                        Some(&tombstone) if stored => {
                            found(p, Some(ev.height), Problem::Unpurged { tombstone })
                        }
                        Some(&tombstone) if !self.broken.contains(&p) => masked.push(Masked {
                            payload: p,
                            event: cur,
                            stream: stream.clone(),
                            height: ev.height,
                            tombstone,
                        }),
                        Some(_) => {}
                        None if !self.payloads.contains(&p) && !self.broken.contains(&p) => {
                            let problem = if self.events.contains_key(&p) {
                                Problem::NotAnEvent {
                                    role: "payload",
                                    from: cur,
                                }
                            } else {
                                Problem::Missing {
                                    role: "payload",
                                    from: Some(cur),
                                }
                            };
                            found(p, Some(ev.height), problem);
                        }
                        None => {}
                    }
                }
                if let Some(masks) = self.tombstones.get(&cur) {
                    tombstones.push((cur, ev.height));
                    for m in masks {
                        active.entry(*m).or_insert(cur);
                    }
                }
                for c in &ev.causes {
                    if !self.events.contains_key(c) && !self.broken.contains(c) {
                        let problem = if self.payloads.contains(c) {
                            Problem::NotAnEvent {
                                role: "cause",
                                from: cur,
                            }
                        } else {
                            Problem::Missing {
                                role: "cause",
                                from: Some(cur),
                            }
                        };
                        found(*c, Some(ev.height), problem);
                    }
                }
                match ev.prev {
                    Some(prev) if ev.height > 0 => {
                        from = Some(cur);
                        cur = prev;
                        expected_height = ev.height - 1;
                    }
                    _ => break,
                }
            }
            // A tombstone may mask only payloads of earlier, non-tombstone events of its chain.
            for (t, height) in tombstones {
                for m in &self.tombstones[&t] {
                    let reason = match payloads.get(m) {
                        Some(&(h, false)) if h < height => continue,
                        Some(&(_, true)) => format!("masks {m}, the payload of a tombstone"),
                        Some(&(h, _)) => {
                            format!("masks {m}, the payload of a later event (height {h})")
                        }
                        None => {
                            format!("masks {m}, which is not the payload of any event of {stream}")
                        }
                    };
                    found(t, Some(height), Problem::BadTombstone { reason });
                }
            }
        }
        self.findings.extend(findings);
        self.masked.extend(masked);
        chain
    }

    /// Reports every event that no chain reached: forks, events beyond a head, orphans.
    pub(super) fn find_strays(
        &mut self,
        chain: &HashMap<(StreamId, u64), Cid>,
        heads: &[(StreamId, Head)],
    ) {
        let reached: HashSet<&Cid> = chain.values().collect();
        let head_of: HashMap<&StreamId, u64> = heads.iter().map(|(s, h)| (s, h.height)).collect();
        let mut findings = Vec::new();
        for (cid, ev) in &self.events {
            if reached.contains(cid) {
                continue;
            }
            let problem = match (
                chain.get(&(ev.stream.clone(), ev.height)),
                head_of.get(&ev.stream),
            ) {
                (Some(member), _) => Problem::Fork { chain: *member },
                (None, Some(&h)) if ev.height > h => Problem::Truncated {
                    head_height: Some(h),
                },
                (None, None) => Problem::Truncated { head_height: None },
                (None, Some(_)) => Problem::Unreachable,
            };
            findings.push(Finding {
                cid: Some(*cid),
                stream: Some(ev.stream.clone()),
                height: Some(ev.height),
                problem,
            });
        }
        self.findings.extend(findings);
    }
}

//! Answering requests: a queue-group subscriber that hands each request's subject and body to
//! a handler and replies with what it returns, so several processes share the load. What the
//! requests mean is the caller's (`personctl serve --commands` runs the domain's
//! `requests::handle`); this module only carries them.

use std::sync::atomic::{AtomicBool, Ordering};

use futures_util::StreamExt;

use super::{nats, Link};
use crate::Result;

/// How long to wait for a request before looking at the stop flag again.
const IDLE: std::time::Duration = std::time::Duration::from_millis(200);

/// Answers requests on `subject` (wildcards allowed) in queue group `queue` until `stop` is
/// set: each request's subject and body go to `handle`, whose answer is the reply. A request
/// without a reply subject is handled and its answer dropped. Returns how many were handled.
/// Fails when the subscription cannot be made or ends; a reply that cannot be sent is logged
/// (the requester times out and may retry).
pub fn respond(
    link: &Link,
    subject: &str,
    queue: &str,
    stop: &AtomicBool,
    handle: &mut dyn FnMut(&str, &[u8]) -> Vec<u8>,
) -> Result<u64> {
    let client = link.backbone().context().client();
    let failed = |e: String| nats(format!("answering requests on {subject}"))(e);
    let mut requests = link
        .block_on(client.queue_subscribe(subject.to_string(), queue.to_string()))
        .map_err(|e| failed(e.to_string()))?;
    // The subscription is registered with the server before the first request is awaited.
    link.block_on(client.flush())
        .map_err(|e| failed(e.to_string()))?;
    let mut handled = 0;
    while !stop.load(Ordering::SeqCst) {
        let next = link.block_on(async {
            tokio::select! {
                m = requests.next() => Some(m),
                _ = tokio::time::sleep(IDLE) => None,
            }
        });
        let message = match next {
            None => continue,
            Some(None) => return Err(failed("the subscription ended".into())),
            Some(Some(m)) => m,
        };
        let answer = handle(&message.subject, &message.payload);
        handled += 1;
        if let Some(reply) = message.reply {
            if let Err(e) = link.block_on(client.publish(reply, answer.into())) {
                tracing::warn!(error = %e, "replying to a request");
            }
        }
    }
    let _ = link.block_on(requests.unsubscribe());
    Ok(handled)
}

//! Publishing many messages at once.
//!
//! lapin resolves `basic_publish` only once its frames are written to the socket by
//! the connection's I/O thread. Awaiting publishes one after another therefore costs
//! one hand-off to that thread per message, which capped a single publisher at about
//! 11,000 messages/s here. [`publish_all`] starts every publish of a batch before
//! awaiting any: the frames are queued in input order (each publish queues its
//! frames on its first poll, and they are polled in order) and written together.
use lapin::options::BasicPublishOptions;
use lapin::{BasicProperties, Channel, PublisherConfirm};

/// One message to publish.
pub struct Outgoing<'a> {
    pub exchange: &'a str,
    pub routing_key: &'a str,
    /// Unroutable messages come back (and [`crate::confirmed`] reports them).
    pub mandatory: bool,
    pub payload: &'a [u8],
    pub properties: BasicProperties,
}

/// Publishes every message, in order, without waiting for one to be written before
/// queueing the next. Returns one result per message, in input order; await each
/// confirm with [`crate::confirmed`].
pub async fn publish_all<'a>(
    ch: &Channel,
    msgs: impl IntoIterator<Item = Outgoing<'a>>,
) -> Vec<lapin::Result<PublisherConfirm>> {
    futures::future::join_all(msgs.into_iter().map(|m| {
        ch.basic_publish(
            m.exchange.into(),
            m.routing_key.into(),
            BasicPublishOptions {
                mandatory: m.mandatory,
                immediate: false,
            },
            m.payload,
            m.properties,
        )
    }))
    .await
}

/// [`publish_all`], then [`confirm_all`].
pub async fn publish_confirmed<'a>(
    ch: &Channel,
    msgs: impl IntoIterator<Item = Outgoing<'a>>,
) -> anyhow::Result<()> {
    confirm_all(publish_all(ch, msgs).await).await
}

/// Awaits every confirm of a batch, in order, all within one
/// [`crate::connection::CONFIRM_TIMEOUT`] (one timer per batch, not per message:
/// at tens of thousands of messages a second the timers cost more than the
/// confirms). A nack, an unroutable return or a publish error is the error.
pub async fn confirm_all(started: Vec<lapin::Result<PublisherConfirm>>) -> anyhow::Result<()> {
    use anyhow::Context as _;
    tokio::time::timeout(crate::connection::CONFIRM_TIMEOUT, async {
        for p in started {
            let conf = p
                .context("publishing")?
                .await
                .context("waiting for the publish confirm")?;
            crate::connection::check_confirmation(conf)?;
        }
        anyhow::Ok(())
    })
    .await
    .context("timed out waiting for the publish confirms")?
}

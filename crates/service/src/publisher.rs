//! A shared, confirmed publisher for request handlers: one channel in confirm
//! mode, reconnected lazily after the broker goes away. Concurrent requests share
//! it (confirms are per message), which is what lets ingest confirm thousands of
//! events per second.
use anyhow::Context as _;
use lapin::options::{BasicPublishOptions, ConfirmSelectOptions};
use lapin::{BasicProperties, Channel, Connection};
use std::time::Duration;
use tokio::sync::Mutex;

pub struct Publisher {
    target: hookfleet_core::config::AmqpTarget,
    queue_type: hookfleet_core::config::QueueType,
    tiers: Vec<Duration>,
    /// The live channel: read without waiting on the hot path.
    live: std::sync::RwLock<Option<Channel>>,
    /// The connection behind `live`; locked while (re)connecting, so one request
    /// reconnects and the others wait for it.
    state: Mutex<Option<Connection>>,
}

impl Publisher {
    pub fn new(settings: &hookfleet_core::Settings) -> Self {
        Self {
            target: settings.amqp.target.clone(),
            queue_type: settings.amqp.queue_type,
            tiers: settings.retry.tiers(),
            live: std::sync::RwLock::new(None),
            state: Mutex::new(None),
        }
    }

    fn live_channel(&self) -> Option<Channel> {
        let live = self.live.read().unwrap_or_else(|p| p.into_inner());
        live.as_ref().filter(|ch| ch.status().connected()).cloned()
    }

    async fn channel(&self) -> anyhow::Result<Channel> {
        if let Some(ch) = self.live_channel() {
            return Ok(ch);
        }
        let mut st = self.state.lock().await;
        // Another request may have reconnected while this one waited for the lock.
        if let Some(ch) = self.live_channel() {
            return Ok(ch);
        }
        *st = None;
        let conn = hookfleet_broker::connect(&self.target, "hookfleet-api").await?;
        let ch = conn.create_channel().await?;
        hookfleet_broker::topology::declare(&ch, self.queue_type, &self.tiers)
            .await
            .context("declaring topology")?;
        ch.confirm_select(ConfirmSelectOptions::default()).await?;
        *st = Some(conn);
        *self.live.write().unwrap_or_else(|p| p.into_inner()) = Some(ch.clone());
        Ok(ch)
    }

    /// Publishes and waits for the broker's confirm (bounded to 10 s); every
    /// failure is a [`BrokerUnavailable`](crate::BrokerUnavailable).
    pub async fn publish(
        &self,
        exchange: &str,
        key: &str,
        body: &[u8],
        props: BasicProperties,
    ) -> anyhow::Result<()> {
        let ch = self.channel().await?;
        let res = tokio::time::timeout(Duration::from_secs(10), async {
            let conf = ch
                .basic_publish(
                    exchange.into(),
                    key.into(),
                    BasicPublishOptions::default(),
                    body,
                    props,
                )
                .await?
                .await?;
            anyhow::ensure!(conf.is_ack(), "the broker nacked the publish");
            Ok(())
        })
        .await
        .context("timed out waiting for the publish confirm")
        .and_then(|r| r);
        if res.is_err() {
            *self.live.write().unwrap_or_else(|p| p.into_inner()) = None;
            *self.state.lock().await = None;
        }
        res.map_err(|e| crate::BrokerUnavailable(e).into())
    }

    /// Syncs the ordered router's bindings (see `hookfleet_router::sync_bindings`)
    /// on a channel of its own: a failed bind closes its channel.
    pub async fn sync_ordered(&self, pool: &hookfleet_store::Pool) -> anyhow::Result<()> {
        self.channel().await?;
        let ch = {
            let st = self.state.lock().await;
            let conn = st.as_ref().context("no broker connection")?;
            conn.create_channel().await?
        };
        let r = hookfleet_router::sync_bindings(pool, &ch).await;
        let _ = ch.close(200, "done".into()).await;
        r
    }

    /// Declares the retry tiers a custom schedule waits in, before the schedule
    /// is stored: no process may meet a schedule whose tier does not exist
    /// (issue #14: the routers' depth poller once looked for such a tier).
    pub async fn declare_schedule_tiers(&self, schedule: &str) -> anyhow::Result<()> {
        let declared = async {
            let ch = self.channel().await?;
            for t in hookfleet_broker::topology::schedule_tiers(schedule, &self.tiers) {
                hookfleet_broker::topology::declare_tier(&ch, self.queue_type, t)
                    .await
                    .context("declaring a retry tier")?;
            }
            anyhow::Ok(())
        };
        declared
            .await
            .map_err(|e| crate::BrokerUnavailable(e).into())
    }

    /// Declares an endpoint's queue (after creating the endpoint).
    pub async fn declare_endpoint(
        &self,
        ep: &hookfleet_store::endpoints::Endpoint,
    ) -> anyhow::Result<()> {
        let declared = async {
            let ch = self.channel().await?;
            hookfleet_broker::topology::declare_endpoint(&ch, self.queue_type, &ep.id, ep.ordered())
                .await
                .context("declaring the endpoint queue")
        };
        declared
            .await
            .map_err(|e| crate::BrokerUnavailable(e).into())
    }
}

//! Publishing events to `hookfleet.events` per the wire contract, with confirms.
use anyhow::{bail, Context as _};
use hookfleet_broker::names;
use lapin::options::{BasicPublishOptions, ConfirmSelectOptions};
use lapin::BasicProperties;

/// Publishes envelopes (`(event_type, body)`) and waits for every confirm.
pub async fn publish(amqp_url: &str, events: &[(String, Vec<u8>, String)]) -> anyhow::Result<()> {
    let conn = hookfleet_broker::connect(amqp_url, "hookfleet-emit").await?;
    let ch = conn.create_channel().await?;
    ch.confirm_select(ConfirmSelectOptions::default()).await?;
    let mut confirms = Vec::with_capacity(events.len());
    for (event_type, body, id) in events {
        let props = BasicProperties::default()
            .with_content_type("application/json".into())
            .with_delivery_mode(2)
            .with_message_id(id.as_str().into());
        confirms.push(
            ch.basic_publish(
                names::EVENTS_EXCHANGE.into(),
                event_type.as_str().into(),
                BasicPublishOptions::default(),
                body,
                props,
            )
            .await
            .context("publishing to hookfleet.events")?,
        );
    }
    for c in confirms {
        if c.await.context("waiting for the confirm")?.is_nack() {
            bail!("the broker refused an event");
        }
    }
    let _ = conn.close(200, "done".into()).await;
    Ok(())
}

/// Builds an envelope for `event_type` with `data` (a JSON object).
pub fn envelope(
    event_type: &str,
    data: serde_json::Value,
    tenant: Option<&str>,
) -> anyhow::Result<(String, Vec<u8>, String)> {
    if !data.is_object() {
        bail!("--data must be a JSON object");
    }
    let id = hookfleet_core::ids::event_id();
    let body = serde_json::json!({
        "id": id, "type": event_type, "tenant_id": tenant,
        "timestamp": hookfleet_core::envelope::now_rfc3339(), "data": data,
    });
    Ok((event_type.to_owned(), serde_json::to_vec(&body)?, id))
}

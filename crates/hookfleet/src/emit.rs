//! Publishing events to `hookfleet.events` per the wire contract, with confirms.
use anyhow::{bail, Context as _};
use hookfleet_broker::names;
use lapin::options::{BasicPublishOptions, ConfirmSelectOptions};

/// Publishes envelopes (`(event_type, body)`) and waits for every confirm.
pub async fn publish(
    amqp: &hookfleet_core::config::AmqpTarget,
    events: &[(String, Vec<u8>, String)],
) -> anyhow::Result<()> {
    let conn = hookfleet_broker::connect(amqp, "hookfleet-emit").await?;
    let ch = conn.create_channel().await?;
    ch.confirm_select(ConfirmSelectOptions::default()).await?;
    let mut confirms = Vec::with_capacity(events.len());
    for (event_type, body, id) in events {
        let props = hookfleet_broker::headers::event_properties(id);
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

/// Envelopes from JSON Lines: each non-blank line an object with `data` and,
/// unless the defaults give them, `type` and `tenant_id`. Errors name the line.
pub fn from_lines(
    text: &str,
    default_type: Option<&str>,
    default_tenant: Option<&str>,
) -> anyhow::Result<Vec<(String, Vec<u8>, String)>> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let n = i + 1;
        if line.trim().is_empty() {
            continue;
        }
        let v: serde_json::Value =
            serde_json::from_str(line).with_context(|| format!("line {n}: not valid JSON"))?;
        let Some(obj) = v.as_object() else {
            bail!("line {n}: must be a JSON object with `type` and `data`");
        };
        let Some(event_type) = obj.get("type").and_then(|t| t.as_str()).or(default_type) else {
            bail!("line {n}: field `type` is missing (or give TYPE on the command line)");
        };
        hookfleet_core::envelope::validate_event_type(event_type)
            .map_err(|r| anyhow::anyhow!("line {n}: field `type`: {r}"))?;
        let tenant = match obj.get("tenant_id") {
            Some(serde_json::Value::String(t)) => Some(t.as_str()),
            Some(serde_json::Value::Null) | None => default_tenant,
            Some(_) => bail!("line {n}: field `tenant_id` must be a string"),
        };
        let data = obj.get("data").cloned().unwrap_or(serde_json::Value::Null);
        let ev = envelope(event_type, data, tenant)
            .map_err(|e| anyhow::anyhow!("line {n}: field `data`: {e}"))?;
        out.push(ev);
    }
    if out.is_empty() {
        bail!("--file holds no event");
    }
    Ok(out)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn lines_become_envelopes_and_errors_name_the_line() {
        let text = "{\"type\":\"user.created\",\"data\":{\"user_id\":1}}\n\n{\"data\":{\"user_id\":2},\"tenant_id\":\"t2\"}\n";
        let evs = from_lines(text, Some("user.created"), Some("acme")).unwrap();
        assert_eq!(evs.len(), 2);
        let second: serde_json::Value = serde_json::from_slice(&evs[1].1).unwrap();
        assert_eq!(second["tenant_id"], "t2");
        let first: serde_json::Value = serde_json::from_slice(&evs[0].1).unwrap();
        assert_eq!(first["tenant_id"], "acme");
        let e = from_lines(
            "{\"data\":{}}\n{\"type\":\"x\",\"data\":[1]}",
            Some("a.b"),
            None,
        )
        .unwrap_err()
        .to_string();
        assert!(e.starts_with("line 2: field `data`"), "{e}");
        let e = from_lines("{\"data\":{}}", None, None)
            .unwrap_err()
            .to_string();
        assert!(e.contains("line 1: field `type` is missing"), "{e}");
        let e = from_lines("nope", None, None).unwrap_err().to_string();
        assert!(e.contains("line 1: not valid JSON"), "{e}");
    }
}

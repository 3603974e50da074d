//! Removing one site's events from the events stream (when the site is deleted), so no replay
//! brings them back.

use async_nats::jetstream;

use crate::topology::Topology;

/// Purges every message of `site`'s subject from the events stream; returns how many.
pub async fn purge_site(
    js: &jetstream::Context,
    topology: &Topology,
    site: &str,
) -> Result<u64, async_nats::Error> {
    let stream = js.get_stream(topology.events_stream()).await?;
    let purged = stream.purge().filter(topology.events_subject(site)).await?;
    Ok(purged.purged)
}

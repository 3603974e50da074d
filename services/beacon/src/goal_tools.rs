//! `beacon goal add|list|delete`: a site's goals, kept in PostgreSQL and read by the API.

use beacon_runtime::Config;
use beacon_store::goals::Goal;

use crate::tools::site_option;
use crate::wiring;

pub async fn goal_add(config: &Config, domain: &str, goal: Goal) -> anyhow::Result<()> {
    let domain = site_option(domain)?;
    goal.validate().map_err(|e| anyhow::anyhow!("--{e}"))?;
    let pool = wiring::postgres(config).await?;
    use beacon_store::goals::{Added, MAX_GOALS_PER_SITE};
    match beacon_store::goals::add(&pool, &domain, &goal).await? {
        Added::NoSuchSite => anyhow::bail!("--site {domain}: no such site (beacon site list)"),
        Added::Full => anyhow::bail!(
            "--site {domain}: has {MAX_GOALS_PER_SITE} goals, the most a site has; delete one \
             first (beacon goal list)"
        ),
        Added::Added => println!("added goal {} to {domain}", goal.display_name()),
        Added::Existing => println!("{domain} has the goal {} already", goal.display_name()),
    }
    Ok(())
}

pub async fn goal_list(config: &Config, domain: &str, json: bool) -> anyhow::Result<()> {
    let domain = site_option(domain)?;
    let pool = wiring::postgres(config).await?;
    if beacon_store::sites::find(&pool, &domain).await?.is_none() {
        anyhow::bail!("--site {domain}: no such site (beacon site list)");
    }
    let goals = beacon_store::goals::list(&**pool.get().await?, &domain).await?;
    if json {
        let list: Vec<_> = goals
            .iter()
            .map(|goal| match goal {
                Goal::Event(name) => {
                    serde_json::json!({"goal": goal.display_name(), "event": name})
                }
                Goal::Page(path) => serde_json::json!({"goal": goal.display_name(), "page": path}),
            })
            .collect();
        println!("{}", serde_json::to_string_pretty(&list)?);
    } else {
        for goal in &goals {
            println!("{}", goal.display_name());
        }
    }
    Ok(())
}

pub async fn goal_delete(config: &Config, domain: &str, goal: Goal) -> anyhow::Result<()> {
    let domain = site_option(domain)?;
    let pool = wiring::postgres(config).await?;
    if !beacon_store::goals::delete(&pool, &domain, &goal).await? {
        anyhow::bail!(
            "{domain} has no goal {} (beacon goal list --site {domain})",
            goal.display_name()
        );
    }
    println!("deleted goal {} of {domain}", goal.display_name());
    Ok(())
}

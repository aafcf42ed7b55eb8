//! The Hugging Face cache: listing (as `zoo_hub::scan` reads it), removal plans for repos,
//! revisions and `prune`, and carrying a plan out. Confirmation is the front end's: it shows
//! the [`DeletePlan`] and calls [`remove`] only when the user agreed.

use std::collections::BTreeMap;

use serde::Serialize;
pub use zoo_hub::scan::{CacheInfo, DeletePlan};

use crate::{Control, OpsError, Result, Zoo, verify::scan_cache};

/// The cache as scanned (warnings are also sent as notes).
pub fn ls(zoo: &Zoo, ctl: &Control) -> Result<CacheInfo> {
    scan_cache(zoo, ctl)
}

/// What `remove` freed (or, with `dry_run`, would free).
#[derive(Debug, Clone, Serialize)]
pub struct RemovalReport {
    pub plan: DeletePlan,
    pub freed_bytes: u64,
    pub dry_run: bool,
    /// Registered copies that lived in what was removed, now forgotten.
    pub forgotten_copies: u64,
}

/// The plan for `targets`: repo ids or registry names (their repo), each optionally `@REV`
/// (a branch, tag or commit), or bare 40-hex commit ids.
pub async fn plan_rm(zoo: &Zoo, targets: &[String], ctl: &Control) -> Result<(CacheInfo, DeletePlan)> {
    let info = scan_cache(zoo, ctl)?;
    let reg = zoo.registry().await?;
    let mut plans: Vec<DeletePlan> = Vec::new();
    // Revisions are planned per repo in one call, so blobs shared only by removed revisions
    // are freed too.
    let mut revisions: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut result = Ok(());
    for t in targets {
        let (id, rev) = match t.split_once('@') {
            Some((i, r)) => (i.to_string(), Some(r.to_string())),
            None => (t.clone(), None),
        };
        // A registry name means its repo.
        let id = match reg.model(&id, &[]).await {
            Ok(Some(m)) => m.hf_repo.unwrap_or(id),
            Ok(None) => id,
            Err(e) => {
                result = Err(e.into());
                break;
            }
        };
        if id.len() == 40 && id.bytes().all(|b| b.is_ascii_hexdigit()) {
            match info.repos.iter().find(|r| r.revisions.iter().any(|v| v.commit == id)) {
                Some(r) => revisions.entry(r.repo_id.clone()).or_default().push(id.clone()),
                None => {
                    result = Err(OpsError::not_found(format!("no cached revision {id}")));
                    break;
                }
            }
            continue;
        }
        if zoo_hub::repo_folder_name(&id).is_none() {
            result =
                Err(OpsError::not_found(format!("{t:?} is not a repo id (ORG/NAME), a registry name or a commit id")));
            break;
        }
        let Some(repo) = info.repos.iter().find(|r| r.repo_id.eq_ignore_ascii_case(&id)) else {
            result = Err(OpsError::not_found(format!("{id} is not in the cache at {}", info.root.display())));
            break;
        };
        match rev {
            Some(rev) => {
                let commit = repo.refs.get(&rev).cloned().unwrap_or(rev.clone());
                if !repo.revisions.iter().any(|v| v.commit == commit) {
                    result = Err(OpsError::not_found(format!("{id} has no cached revision {rev}")));
                    break;
                }
                revisions.entry(repo.repo_id.clone()).or_default().push(commit);
            }
            None => plans.extend(info.plan_remove_repo(&repo.repo_id)),
        }
    }
    reg.close().await;
    result?;
    for (repo, mut commits) in revisions {
        if plans.iter().any(|p| p.repos.contains(&repo)) {
            continue; // the whole repo goes anyway
        }
        commits.sort();
        commits.dedup();
        plans.push(info.plan_remove_revisions(&repo, &commits));
    }
    let mut plan = DeletePlan::default();
    for p in plans {
        plan.freed_bytes += p.freed_bytes;
        plan.paths.extend(p.paths);
        plan.revisions.extend(p.revisions);
        plan.repos.extend(p.repos);
    }
    Ok((info, plan))
}

/// The plan of `prune`: detached revisions and unreferenced blobs.
pub fn plan_prune(zoo: &Zoo, ctl: &Control) -> Result<(CacheInfo, DeletePlan)> {
    let info = scan_cache(zoo, ctl)?;
    let plan = info.plan_prune();
    Ok((info, plan))
}

/// The report of a plan not carried out (a dry run, or nothing to remove).
pub fn not_removed(plan: DeletePlan, dry_run: bool) -> RemovalReport {
    RemovalReport { plan, freed_bytes: 0, dry_run, forgotten_copies: 0 }
}

/// Carries `plan` out and forgets the registered copies that lived in what was removed.
pub async fn remove(zoo: &Zoo, info: &CacheInfo, plan: DeletePlan) -> Result<RemovalReport> {
    let freed = zoo_hub::scan::execute(&plan, &info.root)?;
    let reg = zoo.registry().await?;
    let mut forgotten = 0;
    for p in &plan.paths {
        forgotten += reg.forget_copies_under(&p.display().to_string()).await?;
    }
    reg.close().await;
    Ok(RemovalReport { plan, freed_bytes: freed, dry_run: false, forgotten_copies: forgotten })
}

//! What the operator knows of its children between reconciles, so that a reconcile applies only
//! the objects that need it.
//!
//! The controller's watches of its children (the triggers that re-run a pipeline's reconcile
//! when a child changes) also feed reflector stores: object metadata for Services,
//! ServiceAccounts and CronJobs, and for Deployments and StatefulSets the metadata plus replicas
//! and status (the pod template is dropped). After each server-side apply the reconciler records
//! what it applied ([`Applied`]); the next reconcile skips the apply when [`up_to_date`] says
//! nothing changed on either side:
//!
//! - the rendered object is byte-for-byte what was applied (same hash),
//! - the live object is the one that apply wrote (same uid) and nobody changed its spec since
//!   (same `metadata.generation`, or, for kinds without a generation, the same
//!   `resourceVersion`),
//! - and the apply is younger than the resync interval (which also corrects drift in labels and
//!   annotations, which bumps no generation).
//!
//! A missing or deleted child, a spec edited by someone else, or a changed pipeline spec is
//! therefore applied at once; an unchanged pipeline costs no apply at all. Before the stores have
//! listed, every lookup misses and every child is applied.

use std::collections::HashMap;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::time::{Duration, Instant};

use futures::{Stream, StreamExt};
use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::core::v1::{Service, ServiceAccount};
use kube::Api;
use kube::Resource;
use kube::core::{ApiResource, DynamicObject, ObjectMeta, PartialObjectMeta};
use kube::runtime::reflector::{ObjectRef, Store, store::Writer};
use kube::runtime::{WatchStreamExt, watcher};

use crate::render::Desired;

/// The live state of one child, as far as a reconcile needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Live {
    /// `metadata.uid`.
    pub uid: String,
    /// `metadata.generation` (kinds with a spec the API server versions).
    pub generation: Option<i64>,
    /// `metadata.resourceVersion`.
    pub resource_version: String,
    /// `spec.replicas` and `status.readyReplicas` of Deployments and StatefulSets.
    pub replicas: Option<(i32, i32)>,
}

impl Live {
    fn from_meta(meta: &ObjectMeta, replicas: Option<(i32, i32)>) -> Option<Self> {
        Some(Live {
            uid: meta.uid.clone()?,
            generation: meta.generation,
            resource_version: meta.resource_version.clone()?,
            replicas,
        })
    }
}

impl Live {
    /// The live state an apply returned (`replicas` for Deployments and StatefulSets).
    pub fn from_applied(obj: &DynamicObject, workload: bool) -> Option<Self> {
        let int = |path: &[&str]| {
            let mut v = &obj.data;
            for k in path {
                v = v.get(k)?;
            }
            v.as_i64().and_then(|n| i32::try_from(n).ok())
        };
        let r = workload
            .then(|| replicas(int(&["spec", "replicas"]), int(&["status", "readyReplicas"])))
            .flatten();
        Live::from_meta(&obj.metadata, r)
    }
}

/// What the last apply of one child wrote.
#[derive(Debug, Clone)]
pub struct Applied {
    /// Hash of the rendered object ([`desired_hash`]).
    pub hash: u64,
    /// The live object the apply returned.
    pub live: Live,
    /// When it was applied.
    pub at: Instant,
}

/// Hash of a rendered object (its JSON, whose maps are ordered).
pub fn desired_hash(d: &Desired) -> u64 {
    let mut h = DefaultHasher::new();
    d.resource.api_version.hash(&mut h);
    d.resource.kind.hash(&mut h);
    match serde_json::to_vec(&d.object) {
        Ok(bytes) => bytes.hash(&mut h),
        // Unserialisable objects never compare equal to an earlier apply.
        Err(_) => Instant::now().hash(&mut h),
    }
    h.finish()
}

/// Whether applying `hash` again would change nothing (see the module documentation).
pub fn up_to_date(
    applied: Option<&Applied>,
    hash: u64,
    live: Option<&Live>,
    now: Instant,
    resync: Duration,
) -> bool {
    let (Some(applied), Some(live)) = (applied, live) else { return false };
    let unchanged = match (applied.live.generation, live.generation) {
        (Some(a), Some(b)) => a == b,
        _ => applied.live.resource_version == live.resource_version,
    };
    applied.hash == hash
        && applied.live.uid == live.uid
        && unchanged
        && now.saturating_duration_since(applied.at) < resync
}

/// Reflector stores of the children of one controller run.
#[derive(Clone)]
pub struct ChildStores {
    deployments: Store<Deployment>,
    statefulsets: Store<StatefulSet>,
    services: Store<PartialObjectMeta<Service>>,
    accounts: Store<PartialObjectMeta<ServiceAccount>>,
    cronjobs: Option<(Store<PartialObjectMeta<DynamicObject>>, ApiResource)>,
}

fn replicas(spec: Option<i32>, ready: Option<i32>) -> Option<(i32, i32)> {
    Some((spec.unwrap_or(1), ready.unwrap_or(0)))
}

impl ChildStores {
    /// The live state of a rendered child, when the stores hold it.
    pub fn live(&self, d: &Desired) -> Option<Live> {
        let ns = d.object.metadata.namespace.as_deref()?;
        let name = d.object.metadata.name.as_deref()?;
        match d.resource.kind.as_str() {
            "Deployment" => {
                let o = self.deployments.get(&ObjectRef::new(name).within(ns))?;
                let r = replicas(
                    o.spec.as_ref().and_then(|s| s.replicas),
                    o.status.as_ref().and_then(|s| s.ready_replicas),
                );
                Live::from_meta(&o.metadata, r)
            }
            "StatefulSet" => {
                let o = self.statefulsets.get(&ObjectRef::new(name).within(ns))?;
                let r = replicas(
                    o.spec.as_ref().and_then(|s| s.replicas),
                    o.status.as_ref().and_then(|s| s.ready_replicas),
                );
                Live::from_meta(&o.metadata, r)
            }
            "Service" => {
                let o = self.services.get(&ObjectRef::new(name).within(ns))?;
                Live::from_meta(&o.metadata, None)
            }
            "ServiceAccount" => {
                let o = self.accounts.get(&ObjectRef::new(name).within(ns))?;
                Live::from_meta(&o.metadata, None)
            }
            "CronJob" => {
                let (store, ar) = self.cronjobs.as_ref()?;
                if ar.api_version != d.resource.api_version {
                    return None;
                }
                let key = ObjectRef::new_with(name, ar.clone()).within(ns);
                let o = store.get(&key)?;
                Live::from_meta(&o.metadata, None)
            }
            _ => None,
        }
    }
}

/// A boxed trigger stream of one child kind, for `Controller::owns_stream`.
pub type Trigger<K> = std::pin::Pin<Box<dyn Stream<Item = Result<K, watcher::Error>> + Send>>;

/// The watches of one controller run: the stores and the trigger streams that fill them.
pub struct ChildWatches {
    /// The stores, for the reconciler.
    pub stores: ChildStores,
    /// Deployments (pod template dropped).
    pub deployments: Trigger<Deployment>,
    /// StatefulSets (pod template dropped).
    pub statefulsets: Trigger<StatefulSet>,
    /// Services (metadata).
    pub services: Trigger<PartialObjectMeta<Service>>,
    /// ServiceAccounts (metadata).
    pub accounts: Trigger<PartialObjectMeta<ServiceAccount>>,
    /// CronJobs (metadata) and their API resource, when the server serves CronJobs.
    pub cronjobs: Option<(Trigger<PartialObjectMeta<DynamicObject>>, ApiResource)>,
}

/// Builds the watches of the operator's children (selected by `wc`).
pub fn watches(
    deployments: Api<Deployment>,
    statefulsets: Api<StatefulSet>,
    services: Api<PartialObjectMeta<Service>>,
    accounts: Api<PartialObjectMeta<ServiceAccount>>,
    cronjobs: Option<(Api<PartialObjectMeta<DynamicObject>>, ApiResource)>,
    wc: watcher::Config,
) -> ChildWatches {
    let (deploy_store, deploy_writer) = kube::runtime::reflector::store();
    let deploy = watcher(deployments, wc.clone())
        .default_backoff()
        .modify(|d: &mut Deployment| {
            d.metadata.managed_fields = None;
            if let Some(s) = d.spec.as_mut() {
                s.template = Default::default();
            }
        })
        .reflect(deploy_writer)
        .touched_objects()
        .boxed();
    let (sts_store, sts_writer) = kube::runtime::reflector::store();
    let sts = watcher(statefulsets, wc.clone())
        .default_backoff()
        .modify(|s: &mut StatefulSet| {
            s.metadata.managed_fields = None;
            if let Some(spec) = s.spec.as_mut() {
                spec.template = Default::default();
                spec.volume_claim_templates = None;
            }
        })
        .reflect(sts_writer)
        .touched_objects()
        .boxed();
    let (svc_store, svc_writer) = kube::runtime::reflector::store();
    let svc = meta_trigger(services, wc.clone(), svc_writer);
    let (sa_store, sa_writer) = kube::runtime::reflector::store();
    let sa = meta_trigger(accounts, wc.clone(), sa_writer);
    let cron = cronjobs.map(|(api, ar)| {
        let writer = Writer::new(ar.clone());
        let store = writer.as_reader();
        let trigger = watcher(api, wc.clone())
            .default_backoff()
            .modify(|m: &mut PartialObjectMeta<DynamicObject>| m.metadata.managed_fields = None)
            .reflect(writer)
            .touched_objects()
            .boxed();
        ((store, ar.clone()), (trigger, ar))
    });
    let (cron_store, cron_trigger) = match cron {
        Some((s, t)) => (Some(s), Some(t)),
        None => (None, None),
    };
    ChildWatches {
        stores: ChildStores {
            deployments: deploy_store,
            statefulsets: sts_store,
            services: svc_store,
            accounts: sa_store,
            cronjobs: cron_store,
        },
        deployments: deploy,
        statefulsets: sts,
        services: svc,
        accounts: sa,
        cronjobs: cron_trigger,
    }
}

fn meta_trigger<K>(
    api: Api<PartialObjectMeta<K>>,
    wc: watcher::Config,
    writer: Writer<PartialObjectMeta<K>>,
) -> Trigger<PartialObjectMeta<K>>
where
    K: Resource<DynamicType = ()> + Clone + std::fmt::Debug + Send + Sync + 'static,
{
    watcher(api, wc)
        .default_backoff()
        .modify(|m: &mut PartialObjectMeta<K>| m.metadata.managed_fields = None)
        .reflect(writer)
        .touched_objects()
        .boxed()
}

/// What was applied per child (`{pipeline uid}/{Kind/name}`), shared by the reconciles.
#[derive(Default)]
pub struct AppliedChildren(std::sync::Mutex<HashMap<String, Applied>>);

impl AppliedChildren {
    /// The last apply of a child.
    pub fn get(&self, key: &str) -> Option<Applied> {
        self.0.lock().ok()?.get(key).cloned()
    }

    /// Records an apply; returns the previous record.
    pub fn insert(&self, key: String, applied: Applied) -> Option<Applied> {
        self.0.lock().ok()?.insert(key, applied)
    }

    /// Forgets every child of a pipeline (on deletion).
    pub fn forget(&self, pipeline_uid: &str) {
        let prefix = format!("{pipeline_uid}/");
        if let Ok(mut m) = self.0.lock() {
            m.retain(|k, _| !k.starts_with(&prefix));
        }
    }

    /// Forgets everything (a new controller run starts from fresh stores).
    pub fn clear(&self) {
        if let Ok(mut m) = self.0.lock() {
            m.clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn live(uid: &str, generation: Option<i64>, rv: &str) -> Live {
        Live { uid: uid.into(), generation, resource_version: rv.into(), replicas: None }
    }

    fn applied(hash: u64, l: Live, at: Instant) -> Applied {
        Applied { hash, live: l, at }
    }

    const RESYNC: Duration = Duration::from_secs(600);

    #[test]
    fn unchanged_child_is_not_applied_again() {
        let now = Instant::now();
        let a = applied(7, live("u", Some(2), "10"), now);
        // A status update bumps the resourceVersion, not the generation.
        assert!(up_to_date(Some(&a), 7, Some(&live("u", Some(2), "11")), now, RESYNC));
    }

    #[test]
    fn every_change_leads_to_an_apply() {
        let now = Instant::now();
        let a = applied(7, live("u", Some(2), "10"), now);
        let same = live("u", Some(2), "10");
        assert!(!up_to_date(None, 7, Some(&same), now, RESYNC), "never applied");
        assert!(!up_to_date(Some(&a), 7, None, now, RESYNC), "child missing");
        assert!(!up_to_date(Some(&a), 8, Some(&same), now, RESYNC), "spec changed");
        assert!(
            !up_to_date(Some(&a), 7, Some(&live("v", Some(2), "10")), now, RESYNC),
            "recreated"
        );
        assert!(
            !up_to_date(Some(&a), 7, Some(&live("u", Some(3), "12")), now, RESYNC),
            "edited by someone else"
        );
        assert!(!up_to_date(Some(&a), 7, Some(&same), now + RESYNC, RESYNC), "resync due");
    }

    #[test]
    fn kinds_without_generation_compare_resource_versions() {
        let now = Instant::now();
        let a = applied(7, live("u", None, "10"), now);
        assert!(up_to_date(Some(&a), 7, Some(&live("u", None, "10")), now, RESYNC));
        assert!(!up_to_date(Some(&a), 7, Some(&live("u", None, "11")), now, RESYNC));
    }

    #[test]
    fn forget_drops_only_that_pipeline() {
        let c = AppliedChildren::default();
        let a = applied(1, live("u", None, "1"), Instant::now());
        c.insert("p1/Service/a".into(), a.clone());
        c.insert("p2/Service/a".into(), a);
        c.forget("p1");
        assert!(c.get("p1/Service/a").is_none());
        assert!(c.get("p2/Service/a").is_some());
    }
}

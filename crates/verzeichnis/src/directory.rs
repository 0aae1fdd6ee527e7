//! The in-memory directory snapshot and the Zuständigkeitsfinder.
//!
//! A snapshot is built once from storage and then only read; a change builds a new one. A
//! lookup for a place is at most five hash lookups (one per ARS level), whatever the number of
//! rules, so the Routing API's cost does not grow with the rule set.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use domain::{Ags, Ars, ArsLevel, AuthorityKind, Leistungsschluessel, ResponsibleLevel};

use crate::model::{Authority, DestinationRecord, Rule, RuleTarget, Service};
use crate::search::{Haystack, Query};

/// How far a chain of mergers is followed before we call the data broken.
const MAX_SUCCESSOR_HOPS: usize = 8;

/// Which area a routing question is about.
#[derive(Debug, Clone)]
pub enum RouteQuery {
    Ars(Ars),
    Ags(Ags),
    AreaId(String),
}

/// One responsible authority, and the rule that made it so.
#[derive(Debug, Clone, Copy)]
pub struct Resolution<'a> {
    pub authority: &'a Authority,
    pub rule: &'a Rule,
}

/// A place a citizen can pick in the finder, or an area the Routing API can name.
#[derive(Debug, Clone)]
pub struct Place {
    /// The key to route with (a 12-digit place, or the authority's own key).
    pub ars: Ars,
    pub name: String,
    pub kind: AuthorityKind,
    /// E.g. "Samtgemeinde Nenndorf" for a member municipality.
    pub part_of: Option<String>,
    /// Only for the finder: Land, Kreise and uninhabited areas are not places one lives in.
    pub is_residence: bool,
    haystack: Haystack,
}

#[derive(Debug, Default)]
pub struct Directory {
    authorities: HashMap<Ars, Authority>,
    /// Authorities that serve as "the Gemeindeverband" / "the Kreis" of a place, by key, for
    /// enumerating all of them inside a coarse area.
    local_level: BTreeMap<Ars, ()>,
    kreis_level: BTreeMap<Ars, ()>,
    services: Vec<Service>,
    service_index: HashMap<Leistungsschluessel, usize>,
    service_haystacks: Vec<Haystack>,
    rules: Vec<Rule>,
    rule_index: HashMap<(u64, u64), usize>,
    /// Per service, its rules' areas in key order, for finding exceptions inside an area.
    rules_by_service: HashMap<u64, Vec<(Ars, usize)>>,
    destinations: HashMap<Ars, DestinationRecord>,
    ags_index: HashMap<String, Ars>,
    places: Vec<Place>,
    /// Changes with every write to the directory, so other nodes know when to reload.
    pub generation: i64,
    routes: crate::routing::RouteFragments,
}

fn service_code(key: &Leistungsschluessel) -> u64 {
    key.as_str().parse().unwrap_or(0)
}

fn area_code(area: &str) -> u64 {
    // The length goes in too: "03" and "030" are different areas.
    area.parse::<u64>().unwrap_or(0) * 16 + area.len() as u64
}

impl Directory {
    pub fn build(
        authorities: Vec<Authority>,
        services: Vec<Service>,
        rules: Vec<Rule>,
        destinations: Vec<DestinationRecord>,
        generation: i64,
    ) -> Self {
        let mut dir = Directory {
            generation,
            ..Default::default()
        };
        for a in authorities {
            if a.active {
                match a.kind {
                    AuthorityKind::Einheitsgemeinde | AuthorityKind::Samtgemeinde => {
                        dir.local_level.insert(a.ars.clone(), ());
                    }
                    AuthorityKind::KreisfreieStadt => {
                        dir.local_level.insert(a.ars.clone(), ());
                        dir.kreis_level.insert(a.ars.clone(), ());
                    }
                    AuthorityKind::Landkreis | AuthorityKind::Region => {
                        dir.kreis_level.insert(a.ars.clone(), ());
                    }
                    _ => {}
                }
            }
            if let Some(place) = a.place_ars()
                && let Some(ags) = place.ags()
            {
                dir.ags_index.insert(ags.as_str().to_owned(), place);
            }
            dir.authorities.insert(a.ars.clone(), a);
        }
        dir.places = build_places(&dir.authorities);
        for (i, s) in services.iter().enumerate() {
            dir.service_index.insert(s.key.clone(), i);
            dir.service_haystacks
                .push(Haystack::new(&[&s.name, s.key.as_str()]));
        }
        dir.services = services;
        for (i, r) in rules.iter().enumerate() {
            let svc = service_code(&r.service);
            dir.rule_index.insert((svc, area_code(r.area.as_str())), i);
            dir.rules_by_service
                .entry(svc)
                .or_default()
                .push((r.area.clone(), i));
        }
        for list in dir.rules_by_service.values_mut() {
            list.sort();
        }
        dir.rules = rules;
        dir.destinations = destinations
            .into_iter()
            .map(|d| (d.authority.clone(), d))
            .collect();
        dir
    }

    pub fn authority(&self, ars: &Ars) -> Option<&Authority> {
        self.authorities.get(ars)
    }

    pub fn authorities(&self) -> impl Iterator<Item = &Authority> {
        self.authorities.values()
    }

    /// "Samtgemeinde Nenndorf, Landkreis Schaumburg": the name with its parents up to the Kreis.
    pub fn full_name(&self, authority: &Authority) -> String {
        let mut name = authority.display_name();
        let mut parent = authority.parent.as_ref();
        while let Some(p) = parent.and_then(|p| self.authorities.get(p)) {
            if p.kind == AuthorityKind::Land {
                break;
            }
            name.push_str(", ");
            name.push_str(&p.display_name());
            parent = p.parent.as_ref();
        }
        name
    }

    pub fn authority_count(&self) -> usize {
        self.authorities.len()
    }

    pub fn service(&self, key: &Leistungsschluessel) -> Option<&Service> {
        self.service_index.get(key).map(|&i| &self.services[i])
    }

    pub fn services(&self) -> &[Service] {
        &self.services
    }

    pub fn rules(&self) -> &[Rule] {
        &self.rules
    }

    pub fn destination(&self, authority: &Ars) -> Option<&DestinationRecord> {
        self.destinations.get(authority)
    }

    /// Pre-serialises the Routing API answers' pieces for links under `base_url`.
    pub fn prepare_routes(&mut self, base_url: &str) {
        self.routes = crate::routing::RouteFragments::build(self, base_url);
    }

    pub fn route_fragments(&self) -> &crate::routing::RouteFragments {
        &self.routes
    }

    pub fn destinations(&self) -> impl Iterator<Item = &DestinationRecord> {
        self.destinations.values()
    }

    pub fn places(&self) -> &[Place] {
        &self.places
    }

    /// The area a Routing API question names, as an ARS. `None` when the AGS or area id is
    /// not known here (which is not an error: another Land's Routing API may know it).
    pub fn area_of(&self, query: &RouteQuery) -> Option<Ars> {
        match query {
            RouteQuery::Ars(ars) => Some(ars.clone()),
            RouteQuery::Ags(ags) => ags
                .as_ars_prefix()
                .or_else(|| self.ags_index.get(ags.as_str()).cloned()),
            RouteQuery::AreaId(id) => Ars::parse(id).ok(),
        }
    }

    /// The Zuständigkeitsfinder: every authority responsible for `service` in `area`, in key
    /// order. A place (12 or 9 digits) normally has one; a coarse area (a Kreis, the Land)
    /// has one per authority inside it that is responsible for a part.
    pub fn resolve(&self, service: &Leistungsschluessel, area: &Ars) -> Vec<Resolution<'_>> {
        let svc = service_code(service);
        let mut found: Vec<Resolution<'_>> = Vec::new();
        if let Some(rule) = area
            .prefixes()
            .find_map(|p| self.rule_index.get(&(svc, area_code(p))))
            .map(|&i| &self.rules[i])
        {
            self.apply(rule, area, &mut found);
        }
        // Rules for smaller areas inside the one asked about take over their part of it.
        if area.level() != ArsLevel::Gemeinde
            && let Some(list) = self.rules_by_service.get(&svc)
        {
            let start = list.partition_point(|(a, _)| a <= area);
            for (a, i) in &list[start..] {
                if !area.contains(a) {
                    break;
                }
                self.apply(&self.rules[*i], a, &mut found);
            }
        }
        if found.len() > 1 {
            found.sort_by(|x, y| x.authority.ars.cmp(&y.authority.ars));
            found.dedup_by(|x, y| x.authority.ars == y.authority.ars);
        }
        found
    }

    fn apply<'a>(&'a self, rule: &'a Rule, area: &Ars, out: &mut Vec<Resolution<'a>>) {
        match &rule.target {
            RuleTarget::Authority(ars) => {
                if let Some(authority) = self.current(ars) {
                    out.push(Resolution { authority, rule });
                }
            }
            RuleTarget::Level(level) => {
                for authority in self.at_level(*level, area) {
                    out.push(Resolution { authority, rule });
                }
            }
        }
    }

    /// The active authority an ARS stands for now, following mergers.
    pub fn current(&self, ars: &Ars) -> Option<&Authority> {
        let mut a = self.authorities.get(ars)?;
        for _ in 0..MAX_SUCCESSOR_HOPS {
            if a.active {
                return Some(a);
            }
            a = self.authorities.get(a.successor.as_ref()?)?;
        }
        None
    }

    /// The authorities of `level` responsible for `area`: the one containing it, or all
    /// inside it when the area is coarser than the level.
    fn at_level(&self, level: ResponsibleLevel, area: &Ars) -> Vec<&Authority> {
        match level {
            ResponsibleLevel::Land => area
                .prefix(ArsLevel::Land)
                .and_then(|p| self.current(&p))
                .into_iter()
                .collect(),
            ResponsibleLevel::Kreis => match area.prefix(ArsLevel::Kreis) {
                Some(p) => self.current(&p).into_iter().collect(),
                None => self.enumerate(&self.kreis_level, area),
            },
            ResponsibleLevel::Gemeindeverband => match area.prefix(ArsLevel::Gemeindeverband) {
                Some(p) => match self.authorities.get(&p) {
                    // A gemeindefreies Gebiet has no administration: its Landkreis acts.
                    Some(a) if a.kind.administers() => self.current(&p).into_iter().collect(),
                    _ => self.at_level(ResponsibleLevel::Kreis, area),
                },
                None => {
                    // A kreisfreie Stadt is its own Gemeindeverband.
                    if let Some(k) = area.prefix(ArsLevel::Kreis)
                        && let Some(a) = self.current(&k)
                        && a.kind == AuthorityKind::KreisfreieStadt
                    {
                        return vec![a];
                    }
                    self.enumerate(&self.local_level, area)
                }
            },
        }
    }

    fn enumerate<'a>(&'a self, set: &'a BTreeMap<Ars, ()>, area: &Ars) -> Vec<&'a Authority> {
        set.range(area.clone()..)
            .take_while(|(k, _)| area.contains(k))
            .filter_map(|(k, _)| self.authorities.get(k))
            .collect()
    }

    /// Services whose name or key matches, best first.
    pub fn search_services(&self, text: &str, limit: usize) -> Vec<&Service> {
        self.search_services_scored(text, limit)
            .into_iter()
            .map(|(_, s)| s)
            .collect()
    }

    /// Like [`Directory::search_services`], with each hit's score (100 and more: exact name).
    pub fn search_services_scored(&self, text: &str, limit: usize) -> Vec<(u32, &Service)> {
        let query = Query::parse(text);
        let mut hits: Vec<(u32, usize)> = self
            .service_haystacks
            .iter()
            .enumerate()
            .filter_map(|(i, h)| h.score(&query).map(|s| (s, i)))
            .collect();
        hits.sort_by(|a, b| {
            b.0.cmp(&a.0)
                .then_with(|| {
                    self.services[a.1]
                        .name
                        .len()
                        .cmp(&self.services[b.1].name.len())
                })
                .then_with(|| self.services[a.1].key.cmp(&self.services[b.1].key))
        });
        hits.into_iter()
            .take(limit)
            .map(|(s, i)| (s, &self.services[i]))
            .collect()
    }

    /// Places and areas whose name (or postcode) matches all `terms`, best first.
    pub fn search_places(&self, terms: &[&str], residences_only: bool) -> Vec<&Place> {
        self.search_places_scored(terms, residences_only)
            .into_iter()
            .map(|(_, p)| p)
            .collect()
    }

    /// Like [`Directory::search_places`], with each hit's score (100 and more: exact name).
    pub fn search_places_scored(
        &self,
        terms: &[&str],
        residences_only: bool,
    ) -> Vec<(u32, &Place)> {
        let queries: Vec<Query> = terms.iter().map(|t| Query::parse(t)).collect();
        let mut hits: Vec<(u32, &Place)> = self
            .places
            .iter()
            .filter(|p| !residences_only || p.is_residence)
            .filter_map(|p| {
                let mut total = 0;
                for q in &queries {
                    total += p.haystack.score(q)?;
                }
                Some((total, p))
            })
            .collect();
        hits.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| a.1.name.cmp(&b.1.name)));
        hits
    }

    /// For each authority, the (service, area) pairs it is responsible for under the rules:
    /// what its destination signature names.
    pub fn responsibilities(&self) -> HashMap<Ars, BTreeSet<(Leistungsschluessel, Ars)>> {
        let mut out: HashMap<Ars, BTreeSet<(Leistungsschluessel, Ars)>> = HashMap::new();
        let mut add = |a: &Authority, svc: &Leistungsschluessel, area: Ars| {
            out.entry(a.ars.clone())
                .or_default()
                .insert((svc.clone(), area));
        };
        for rule in &self.rules {
            match &rule.target {
                RuleTarget::Authority(ars) => {
                    if let Some(a) = self.current(ars) {
                        add(a, &rule.service, rule.area.clone());
                    }
                }
                RuleTarget::Level(level) => {
                    for a in self.at_level(*level, &rule.area) {
                        // Name the smaller of the two areas: the authority's own part of a
                        // coarse rule area, or the rule's area inside the authority's.
                        let area = if rule.area.contains(&a.ars) {
                            a.ars.clone()
                        } else {
                            rule.area.clone()
                        };
                        add(a, &rule.service, area);
                    }
                    if *level == ResponsibleLevel::Gemeindeverband {
                        // Uninhabited areas inside the rule's area fall to their Landkreis.
                        for g in self.authorities.values().filter(|g| {
                            g.kind == AuthorityKind::GemeindefreiesGebiet
                                && rule.area.contains(&g.ars)
                        }) {
                            for a in self.at_level(ResponsibleLevel::Kreis, &g.ars) {
                                add(a, &rule.service, g.ars.clone());
                            }
                        }
                    }
                }
            }
        }
        out
    }
}

fn build_places(authorities: &HashMap<Ars, Authority>) -> Vec<Place> {
    let mut places = Vec::new();
    let mut member_names: BTreeSet<(Ars, String)> = BTreeSet::new();
    for a in authorities.values().filter(|a| a.active) {
        let part_of = a
            .parent
            .as_ref()
            .and_then(|p| authorities.get(p))
            .map(|p| p.display_name());
        let display = a.display_name();
        let is_residence = matches!(
            a.kind,
            AuthorityKind::Einheitsgemeinde
                | AuthorityKind::Samtgemeinde
                | AuthorityKind::KreisfreieStadt
                | AuthorityKind::Mitgliedsgemeinde
        );
        if a.kind == AuthorityKind::Mitgliedsgemeinde
            && let Some(p) = &a.parent
        {
            let plain = a.name.split(", ").next().unwrap_or(&a.name);
            member_names.insert((p.clone(), crate::search::fold(plain)));
        }
        let postcodes: Vec<&str> = a.details.postcodes.iter().map(String::as_str).collect();
        let plain = a.name.split(", ").next().unwrap_or(&a.name);
        let mut texts = vec![display.as_str(), a.name.as_str(), plain];
        texts.extend(postcodes);
        places.push(Place {
            ars: a.place_ars().unwrap_or_else(|| a.ars.clone()),
            name: display.clone(),
            kind: a.kind,
            part_of,
            is_residence,
            haystack: Haystack::new(&texts),
        });
    }
    // A Samtgemeinde's seat is one of its member municipalities; the Gemeindeverzeichnis
    // does not list members, so the seat is the one member we can name without more data.
    for sg in authorities
        .values()
        .filter(|a| a.active && a.kind == AuthorityKind::Samtgemeinde)
    {
        let Some(seat) = &sg.seat else { continue };
        if member_names.contains(&(sg.ars.clone(), crate::search::fold(seat))) {
            continue;
        }
        places.push(Place {
            ars: sg.ars.clone(),
            name: seat.clone(),
            kind: AuthorityKind::Mitgliedsgemeinde,
            part_of: Some(sg.display_name()),
            is_residence: true,
            haystack: Haystack::new(&[seat]),
        });
    }
    places.sort_by(|a, b| a.name.cmp(&b.name).then_with(|| a.ars.cmp(&b.ars)));
    places
}

//! The web layer over HTTP, against the demo directory on each database backend. One server
//! per backend is started once for the whole binary (seeding signs ~2,000 destination
//! signatures) and the tests talk to it like any client.
#![allow(clippy::unwrap_used)]

use std::sync::OnceLock;

use reqwest::StatusCode;
use serde_json::Value;
use store::Backend;

const ADMIN_TOKEN: &str = "test-admin-token-0123456789";

struct Server {
    base: String,
    backend: Backend,
    demo: app::demo::DemoAccounts,
}

const DEMO_CLIENT_SECRET: &str = "test-demo-client-secret-0123456789abcdefghij";

fn start(backend: Backend) -> Server {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let db = store::testing::fresh(backend).await;
            let kek = crypto::Kek::generate();
            app::install_routing_key(db.store(), &kek, crypto::testkey::shared())
                .await
                .unwrap();
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let base = format!("http://{}", listener.local_addr().unwrap());
            let app = app::App::open(db.store().clone(), kek, app::Settings::new(base.clone()))
                .await
                .unwrap();
            app.seed_demo().await.unwrap();
            let demo = app.seed_demo_accounts(DEMO_CLIENT_SECRET).await.unwrap();
            let config = web::WebConfig {
                admin_token: Some(ADMIN_TOKEN.into()),
                demo: true,
                routing_rate_limit: 1_000_000,
                ..Default::default()
            };
            let router = web::router(app, config);
            tx.send((base, demo)).unwrap();
            let _keep = db;
            web::serve(listener, router, std::future::pending())
                .await
                .unwrap();
        });
    });
    let (base, demo) = rx.recv().unwrap();
    Server {
        base,
        backend,
        demo,
    }
}

/// The servers to test against: SQLite always, PostgreSQL where configured.
fn servers() -> &'static [Server] {
    static SERVERS: OnceLock<Vec<Server>> = OnceLock::new();
    SERVERS.get_or_init(|| store::testing::backends().into_iter().map(start).collect())
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .cookie_store(true)
        .build()
        .unwrap()
}

async fn get_json(url: &str) -> (StatusCode, Value) {
    let res = client().get(url).send().await.unwrap();
    let status = res.status();
    (status, res.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn routes_answer_for_places_by_ars_ags_and_area_id() {
    for s in servers() {
        eprintln!("-- {:?}", s.backend);
        let url = |q: &str| format!("{}/routing-api/v1/routes?{q}", s.base);
        let (st, body) = get_json(&url("leikaKey=99115005104000&ars=032575403006")).await;
        assert_eq!(st, StatusCode::OK);
        assert_eq!(body["totalCount"], 1);
        let route = &body["routes"][0];
        assert_eq!(route["destinationShortName"], "Samtgemeinde Nenndorf");
        assert_eq!(
            route["destinationName"],
            "Samtgemeinde Nenndorf, Landkreis Schaumburg"
        );
        assert!(route["contactPersons"][0]["name"].is_string());
        assert!(route["address"]["zip"].is_string());
        assert_eq!(route["processingDuration"]["unit"], "day");
        assert!(
            route["furtherInformation"]["description"]["de"]
                .as_str()
                .unwrap()
                .starts_with("<p>")
        );
        // http:// links do not fit the schema's https pattern and are left out.
        assert!(route.get("imprintUrl").is_none());

        // The same place by AGS, and the city of Hannover by AGS, and an area id from /areas.
        let (_, by_ags) = get_json(&url("leikaKey=99115005104000&ags=03241001")).await;
        assert_eq!(
            by_ags["routes"][0]["destinationShortName"],
            "Landeshauptstadt Hannover"
        );
        let (_, areas) = get_json(&format!(
            "{}/routing-api/v1/areas?areaSearchexpression=G%C3%B6ttingen",
            s.base
        ))
        .await;
        let id = areas["areas"]
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["type"] == "Einheitsgemeinde")
            .unwrap()["id"]
            .as_str()
            .unwrap()
            .to_owned();
        let (_, by_id) = get_json(&url(&format!("leikaKey=99013001024000&areaId={id}"))).await;
        assert_eq!(
            by_id["routes"][0]["destinationShortName"],
            "Stadt Göttingen"
        );

        // A coarse area: several routes, paged.
        let (_, all) = get_json(&url("leikaKey=99115005104000&ars=03257")).await;
        let total = all["totalCount"].as_u64().unwrap();
        assert!(total > 5);
        let (_, page) = get_json(&url("leikaKey=99115005104000&ars=03257&offset=2&limit=2")).await;
        assert_eq!(
            (
                page["count"].as_u64(),
                page["offset"].as_u64(),
                page["totalCount"].as_u64()
            ),
            (Some(2), Some(2), Some(total))
        );
        assert_eq!(
            page["routes"][0]["destinationId"],
            all["routes"][2]["destinationId"]
        );

        // Nothing responsible: an empty answer, not an error.
        let (st, none) = get_json(&url("leikaKey=99008003001000&ars=032575403006")).await;
        assert_eq!((st, none["totalCount"].as_u64()), (StatusCode::OK, Some(0)));
    }
}

#[tokio::test]
async fn invalid_routing_parameters_get_problems_naming_them() {
    for s in servers() {
        let cases = [
            ("ars=032575403006", "leikaKey"),
            ("leikaKey=12&ars=03", "leikaKey"),
            ("leikaKey=99115005104000", "ars"),
            ("leikaKey=99115005104000&ars=0325", "ars"),
            ("leikaKey=99115005104000&ags=0324100", "ags"),
            ("leikaKey=99115005104000&ars=03&ags=03241001", "ars"),
            ("leikaKey=99115005104000&areaId=abc", "areaId"),
            ("leikaKey=99115005104000&ars=03&limit=0", "limit"),
            ("leikaKey=99115005104000&ars=03&limit=501", "limit"),
            ("leikaKey=99115005104000&ars=03&offset=-1", "offset"),
            (
                "leikaKey=99115005104000&leikaKey=99115005104000&ars=03",
                "leikaKey",
            ),
        ];
        for (query, param) in cases {
            let res = client()
                .get(format!("{}/routing-api/v1/routes?{query}", s.base))
                .send()
                .await
                .unwrap();
            assert_eq!(res.status(), StatusCode::BAD_REQUEST, "{query}");
            assert_eq!(res.headers()["content-type"], "application/problem+json");
            assert!(res.headers().contains_key("ratelimit-limit"));
            let p: Value = res.json().await.unwrap();
            assert_eq!(p["status"], 400);
            assert_eq!(p["invalidParams"][0]["name"], param, "{query}: {p}");
            assert!(
                p["detail"].as_str().unwrap().len() > 20,
                "says how to fix it: {p}"
            );
        }
        let long = "x".repeat(3000);
        let res = client()
            .get(format!("{}/routing-api/v1/routes?q={long}", s.base))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::BAD_REQUEST);
        for q in ["", "areaSearchexpression=a", "areaSearchexpression=*"] {
            let res = client()
                .get(format!("{}/routing-api/v1/areas?{q}", s.base))
                .send()
                .await
                .unwrap();
            assert_eq!(res.status(), StatusCode::BAD_REQUEST, "{q}");
            assert!(res.headers().contains_key("ratelimit-limit"), "{q}");
        }
    }
}

#[tokio::test]
async fn destination_signatures_verify_with_the_published_keys() {
    for s in servers() {
        let (_, jwks) = get_json(&format!("{}/.well-known/jwks.json", s.base)).await;
        let key = &jwks["keys"][0];
        assert_eq!(key["kty"], "RSA");
        assert_eq!(key["alg"], "PS512");
        assert_eq!(key["key_ops"][0], "verify");
        assert!(key["n"].as_str().unwrap().len() >= 683, "RSA-4096");
        assert!(key["x5c"][0].as_str().unwrap().len() > 100);
        let (_, body) = get_json(&format!(
            "{}/routing-api/v1/routes?leikaKey=99013001024000&ars=032410001001",
            s.base
        ))
        .await;
        let route = &body["routes"][0];
        let (header, payload) =
            crypto::verify_compact_ps512(key, route["destinationSignature"].as_str().unwrap())
                .unwrap();
        assert_eq!(header["alg"], "PS512");
        assert_eq!(header["kid"], key["kid"]);
        let claims: Value = serde_json::from_slice(&payload).unwrap();
        assert_eq!(claims["destinationId"], route["destinationId"]);
        assert_eq!(claims["iss"], s.base);
        let services = claims["services"].to_string();
        assert!(services.contains("urn:de:fim:leika:leistung:99013001024000"));
        assert!(services.contains("rs:032410001"));
        assert!(claims["iat"].is_i64() && claims["jti"].is_string());
    }
}

#[tokio::test]
async fn admin_api_manages_rules_and_details() {
    for s in servers() {
        let c = client();
        let rules = format!("{}/api/admin/v1/rules", s.base);
        assert_eq!(
            c.get(&rules).send().await.unwrap().status(),
            StatusCode::UNAUTHORIZED
        );
        assert_eq!(
            c.get(&rules)
                .bearer_auth("wrong")
                .send()
                .await
                .unwrap()
                .status(),
            StatusCode::UNAUTHORIZED
        );
        let list: Value = c
            .get(format!("{rules}?limit=1"))
            .bearer_auth(ADMIN_TOKEN)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert!(list["totalCount"].as_u64().unwrap() > 100);

        // A rule for a service nobody handles yet, for Landkreis Göttingen's area.
        let route = format!(
            "{}/routing-api/v1/routes?leikaKey=99050026001001&ars=031590016016",
            s.base
        );
        assert_eq!(get_json(&route).await.1["totalCount"], 0);
        let res = c.post(&rules).bearer_auth(ADMIN_TOKEN)
            .json(&serde_json::json!({"service": "99050026001001", "area": "03159", "level": "kreis", "note": "test"}))
            .send().await.unwrap();
        assert_eq!(res.status(), StatusCode::CREATED);
        let created: Value = res.json().await.unwrap();
        let id = created["rules"][0]["id"].as_str().unwrap().to_owned();
        let now = get_json(&route).await.1;
        assert_eq!(
            now["routes"][0]["destinationShortName"],
            "Landkreis Göttingen"
        );

        let dup = c.post(&rules).bearer_auth(ADMIN_TOKEN)
            .json(&serde_json::json!({"service": "99050026001001", "area": "03159", "level": "kreis"}))
            .send().await.unwrap();
        assert_eq!(dup.status(), StatusCode::CONFLICT);
        let bad = c
            .post(&rules)
            .bearer_auth(ADMIN_TOKEN)
            .json(&serde_json::json!({"service": "99050026001001", "area": "3", "level": "kreis"}))
            .send()
            .await
            .unwrap();
        assert_eq!(bad.status(), StatusCode::BAD_REQUEST);
        assert_eq!(
            bad.json::<Value>().await.unwrap()["invalidParams"][0]["name"],
            "area"
        );
        let junk = c
            .post(&rules)
            .bearer_auth(ADMIN_TOKEN)
            .body("{not json")
            .send()
            .await
            .unwrap();
        assert_eq!(junk.status(), StatusCode::BAD_REQUEST);

        let del = c
            .delete(format!("{rules}/{id}"))
            .bearer_auth(ADMIN_TOKEN)
            .send()
            .await
            .unwrap();
        assert_eq!(del.status(), StatusCode::NO_CONTENT);
        assert_eq!(
            c.delete(format!("{rules}/{id}"))
                .bearer_auth(ADMIN_TOKEN)
                .send()
                .await
                .unwrap()
                .status(),
            StatusCode::NOT_FOUND
        );
        assert_eq!(get_json(&route).await.1["totalCount"], 0);

        // Details and legal pages of an authority.
        let details = serde_json::json!({"opening_hours": ["Mo–Fr 07:30–12:00"], "contacts": [{"name": "Bürgerbüro Test", "tel": "+49 5723 1234"}]});
        let put = c
            .put(format!("{}/api/admin/v1/authorities/03101/details", s.base))
            .bearer_auth(ADMIN_TOKEN)
            .json(&details)
            .send()
            .await
            .unwrap();
        assert_eq!(put.status(), StatusCode::NO_CONTENT);
        let (_, a) = get_json(&format!("{}/api/v1/authorities/03101", s.base)).await;
        assert_eq!(a["details"]["opening_hours"][0], "Mo–Fr 07:30–12:00");
        let hist: Value = c
            .get(format!("{}/api/admin/v1/authorities/03101", s.base))
            .bearer_auth(ADMIN_TOKEN)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert!(
            hist["history"].as_array().unwrap().len() >= 2,
            "import + edits are recorded"
        );
        let legal = c
            .put(format!(
                "{}/api/admin/v1/authorities/03101/legal/impressum/de",
                s.base
            ))
            .bearer_auth(ADMIN_TOKEN)
            .json(&serde_json::json!({"content": "Echtes Impressum\n\nZweiter Absatz <b>"}))
            .send()
            .await
            .unwrap();
        assert_eq!(legal.status(), StatusCode::NO_CONTENT);
        let html = c
            .get(format!("{}/behoerden/03101/impressum", s.base))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(
            html.contains("Echtes Impressum") && html.contains("Zweiter Absatz &lt;b&gt;"),
            "escaped"
        );
        let bad_kind = c
            .put(format!(
                "{}/api/admin/v1/authorities/03101/legal/agb/de",
                s.base
            ))
            .bearer_auth(ADMIN_TOKEN)
            .json(&serde_json::json!({"content": "x"}))
            .send()
            .await
            .unwrap();
        assert_eq!(bad_kind.status(), StatusCode::BAD_REQUEST);
    }
}

#[tokio::test]
async fn finder_pages_work_without_javascript() {
    for s in servers() {
        let c = client();
        let page = |q: &str| format!("{}/zustaendigkeit?{q}", s.base);
        let res = c
            .get(page("leistung=Wohnsitz+Anmeldung&ort=Bad+Nenndorf"))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::OK);
        let html = res.text().await.unwrap();
        assert!(html.contains("id=\"ergebnis\""), "{html}");
        assert!(html.contains("Samtgemeinde Nenndorf"));
        let html = c
            .get(page("leistung=Hundesteuer&ort=Hannover&lang=en"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(html.contains("<html lang=\"en\">") && html.contains("Landeshauptstadt Hannover"));
        // Ambiguous words offer a choice; choosing gives the answer.
        let html = c
            .get(page("leistung=Personalausweis&ort=31542"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(
            html.contains("name=\"leistungsschluessel\""),
            "a choice of services"
        );
        let html = c
            .get(page(
                "leistung=Personalausweis&leistungsschluessel=99008001012001&ort=Bad+Nenndorf",
            ))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(html.contains("id=\"ergebnis\""));
        // Errors: a summary linking to the fields, the message beside them, 422.
        let res = c.get(page("leistung=&ort=")).send().await.unwrap();
        assert_eq!(res.status(), StatusCode::UNPROCESSABLE_ENTITY);
        let html = res.text().await.unwrap();
        assert!(
            html.contains("class=\"error-summary\"")
                && html.contains("href=\"#leistung\"")
                && html.contains("id=\"ort-error\"")
        );
        let html = c
            .get(page("leistung=Xylophon&ort=Atlantis"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(html.contains("Xylophon") && html.contains("Atlantis"));
        let long = "a".repeat(300);
        assert_eq!(
            c.get(page(&format!("leistung={long}&ort=x")))
                .send()
                .await
                .unwrap()
                .status(),
            StatusCode::UNPROCESSABLE_ENTITY
        );
        // Leichte Sprache.
        let html = c
            .get(page("lang=ls"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(html.contains("Das richtige Amt finden"));
    }
}

#[tokio::test]
async fn pages_carry_security_headers_and_unknown_pages_are_404() {
    for s in servers() {
        let res = client().get(format!("{}/", s.base)).send().await.unwrap();
        assert_eq!(res.status(), StatusCode::OK);
        let h = res.headers();
        assert!(
            h["content-security-policy"]
                .to_str()
                .unwrap()
                .contains("default-src 'self'")
        );
        assert_eq!(h["x-content-type-options"], "nosniff");
        assert!(h.contains_key("x-request-id"));
        let res = client()
            .get(format!("{}/gibt-es-nicht", s.base))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::NOT_FOUND);
        assert!(res.text().await.unwrap().contains("<h1>"));
        assert_eq!(
            client()
                .get(format!("{}/behoerden/099999999", s.base))
                .send()
                .await
                .unwrap()
                .status(),
            StatusCode::NOT_FOUND
        );
        let api404 = client()
            .get(format!("{}/api/v1/nothing", s.base))
            .send()
            .await
            .unwrap();
        assert_eq!(api404.headers()["content-type"], "application/problem+json");
    }
}

#[tokio::test]
async fn feedback_needs_the_csrf_token_and_is_stored() {
    for s in servers() {
        let c = client();
        let url = format!("{}/behoerden/032575403/barrierefreiheit", s.base);
        // No token: refused, nothing stored.
        let res = c
            .post(&url)
            .form(&[("nachricht", "Kontrast zu gering")])
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::UNPROCESSABLE_ENTITY);
        let html = c.get(&url).send().await.unwrap().text().await.unwrap();
        let token = html
            .split("name=\"csrf_token\" value=\"")
            .nth(1)
            .unwrap()
            .split('"')
            .next()
            .unwrap()
            .to_owned();
        let res = c
            .post(&url)
            .form(&[
                ("csrf_token", token.as_str()),
                ("nachricht", ""),
                ("email", "kaputt"),
            ])
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::UNPROCESSABLE_ENTITY);
        let html = res.text().await.unwrap();
        assert!(html.contains("href=\"#nachricht\"") && html.contains("href=\"#email\""));
        let res = c
            .post(&url)
            .form(&[
                ("csrf_token", token.as_str()),
                ("nachricht", "Der Kontrast ist zu gering."),
                ("name", "Erika"),
            ])
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::SEE_OTHER);
        let list: Value = c
            .get(format!(
                "{}/api/admin/v1/feedback?authority=032575403",
                s.base
            ))
            .bearer_auth(ADMIN_TOKEN)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let items = list["feedback"].as_array().unwrap();
        assert!(
            items
                .iter()
                .any(|f| f["message"] == "Der Kontrast ist zu gering.")
        );
        assert!(
            !items.iter().any(|f| f["message"] == "Kontrast zu gering"),
            "the forged post was not stored"
        );
    }
}

#[tokio::test]
async fn operations_endpoints() {
    for s in servers() {
        let c = client();
        assert_eq!(
            c.get(format!("{}/healthz", s.base))
                .send()
                .await
                .unwrap()
                .status(),
            StatusCode::OK
        );
        let (st, ready) = get_json(&format!("{}/readyz", s.base)).await;
        assert_eq!(
            (st, ready["status"].as_str()),
            (StatusCode::OK, Some("ready"))
        );
        c.get(format!("{}/routing-api/v1/info", s.base))
            .send()
            .await
            .unwrap();
        let metrics = c
            .get(format!("{}/metrics", s.base))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(metrics.contains("http_requests_total"), "{metrics}");
        assert!(metrics.contains("http_request_duration_seconds_bucket"));
        assert!(metrics.contains("route=\"/routing-api/v1/info\""));
        assert!(metrics.contains("db_pool_connections"));
        let (_, doc) = get_json(&format!("{}/api/openapi.json", s.base)).await;
        assert_eq!(doc["openapi"], "3.1.0");
        for path in [
            "/routing-api/v1/routes",
            "/routing-api/v1/areas",
            "/routing-api/v1/info",
            "/.well-known/jwks.json",
            "/api/v1/services",
            "/api/v1/places",
            "/api/v1/authorities/{ars}",
            "/api/admin/v1/rules",
            "/api/admin/v1/rules/{id}",
            "/api/admin/v1/authorities/{ars}",
            "/api/admin/v1/authorities/{ars}/details",
            "/api/admin/v1/authorities/{ars}/legal/{kind}/{lang}",
            "/api/admin/v1/feedback",
            "/api/admin/v1/imports/areas",
            "/api/admin/v1/imports/services",
            "/api/admin/v1/mails",
            "/healthz",
            "/readyz",
            "/metrics",
            "/oauth/token",
            "/api/postfach/v1/messages",
            "/api/postfach/v1/messages/{id}",
            "/api/postfach/v1/messages/{id}/attachments/{position}",
            "/api/postfach/v1/replies",
        ] {
            assert!(doc["paths"].get(path).is_some(), "{path} is not documented");
        }
        let (_, services) = get_json(&format!("{}/api/v1/services?q=hundesteuer", s.base)).await;
        assert_eq!(
            services["services"][0]["leistungsschluessel"],
            "99102013000000"
        );
        let (_, places) = get_json(&format!("{}/api/v1/places?q=31542", s.base)).await;
        assert!(
            places["places"]
                .as_array()
                .unwrap()
                .iter()
                .any(|p| p["name"].as_str().unwrap().contains("Nenndorf"))
        );
    }
}

/// The value of the first hidden `csrf_token` input of a page.
fn csrf_of(html: &str) -> String {
    html.split("name=\"csrf_token\" value=\"")
        .nth(1)
        .unwrap()
        .split('"')
        .next()
        .unwrap()
        .to_owned()
}

/// A client logged in through the pages.
async fn logged_in(base: &str, email: &str, password: &str) -> reqwest::Client {
    let c = client();
    let html = c
        .get(format!("{base}/konto/anmelden"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let res = c
        .post(format!("{base}/konto/anmelden"))
        .form(&[
            ("csrf_token", csrf_of(&html).as_str()),
            ("email", email),
            ("password", password),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::SEE_OTHER, "login of {email}");
    c
}

async fn postfach_token(s: &Server) -> String {
    let api = &s.demo.postfach_api;
    let res = client()
        .post(
            api.token_url
                .replace("http://localhost", "http://127.0.0.1"),
        )
        .basic_auth(&api.client_id, Some(&api.client_secret))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.headers()["cache-control"], "no-store");
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["scope"], "postfach:deliver");
    body["access_token"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn token_endpoint_speaks_rfc_6749() {
    for s in servers() {
        let api = &s.demo.postfach_api;
        let url = format!("{}/oauth/token", s.base);
        let post = |form: Vec<(&'static str, String)>| {
            let url = url.clone();
            async move { client().post(url).form(&form).send().await.unwrap() }
        };
        let res = post(vec![
            ("grant_type", "client_credentials".into()),
            ("client_id", api.client_id.clone()),
            ("client_secret", "wrong".into()),
        ])
        .await;
        assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(
            res.json::<Value>().await.unwrap()["error"],
            "invalid_client"
        );
        let res = post(vec![("grant_type", "password".into())]).await;
        assert_eq!(res.status(), StatusCode::BAD_REQUEST);
        assert_eq!(
            res.json::<Value>().await.unwrap()["error"],
            "unsupported_grant_type"
        );
        let res = post(vec![
            ("grant_type", "client_credentials".into()),
            ("client_id", api.client_id.clone()),
            ("client_secret", api.client_secret.clone()),
            ("scope", "openid admin".into()),
        ])
        .await;
        assert_eq!(res.status(), StatusCode::BAD_REQUEST);
        assert_eq!(res.json::<Value>().await.unwrap()["error"], "invalid_scope");
        // client_secret_post works as well as Basic.
        let res = post(vec![
            ("grant_type", "client_credentials".into()),
            ("client_id", api.client_id.clone()),
            ("client_secret", api.client_secret.clone()),
        ])
        .await;
        assert_eq!(res.status(), StatusCode::OK);
    }
}

#[tokio::test]
async fn postfach_delivery_is_recorded_opened_and_answered() {
    for s in servers() {
        eprintln!("-- {:?}", s.backend);
        let token = postfach_token(s).await;
        let messages = format!("{}/api/postfach/v1/messages", s.base);
        let recipient = s.demo.postfach_api.citizen_postfach_ref.clone();

        // Without a token: 401 with a challenge.
        let res = client()
            .post(&messages)
            .json(&serde_json::json!({}))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
        assert!(res.headers().contains_key("www-authenticate"));

        // Invalid input names the parameter.
        let res = client()
            .post(&messages)
            .bearer_auth(&token)
            .json(&serde_json::json!({"recipient": "unknown", "subject": "x", "body": "y"}))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::BAD_REQUEST);
        let p: Value = res.json().await.unwrap();
        assert_eq!(p["invalidParams"][0]["name"], "recipient");
        let res = client()
            .post(&messages)
            .bearer_auth(&token)
            .json(&serde_json::json!({"recipient": recipient, "subject": "x", "body": "y", "extra": 1}))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::BAD_REQUEST);

        // A delivery with two attachments, streamed as multipart.
        let pdf = b"%PDF-1.4 test".to_vec();
        let form = reqwest::multipart::Form::new()
            .part(
                "message",
                reqwest::multipart::Part::text(
                    serde_json::json!({
                        "recipient": recipient,
                        "subject": "Ihr Bescheid (Test)",
                        "body": "Erster Absatz.\n\nZweiter Absatz.",
                        "replyAllowed": true,
                        "minTrustLevel": "STORK-QAA-Level-1",
                    })
                    .to_string(),
                )
                .mime_str("application/json")
                .unwrap(),
            )
            .part(
                "attachment",
                reqwest::multipart::Part::bytes(pdf.clone())
                    .file_name("../../etc/Bescheid.pdf")
                    .mime_str("application/pdf")
                    .unwrap(),
            )
            .part(
                "attachment",
                reqwest::multipart::Part::bytes(vec![7u8; 300_000]).file_name("daten.bin"),
            );
        let res = client()
            .post(&messages)
            .bearer_auth(&token)
            .multipart(form)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::CREATED);
        assert!(res.headers().contains_key("location"));
        let placed: Value = res.json().await.unwrap();
        let id = placed["id"].as_str().unwrap().to_owned();
        assert_eq!(placed["attachments"][0]["filename"], "Bescheid.pdf");
        assert_eq!(placed["attachments"][1]["size"], 300_000);
        assert!(placed["deemedDeliveryDate"].is_string());

        let status = |token: String, id: String| {
            let url = format!("{messages}/{id}");
            async move {
                client()
                    .get(url)
                    .bearer_auth(token)
                    .send()
                    .await
                    .unwrap()
                    .json::<Value>()
                    .await
                    .unwrap()
            }
        };
        let before = status(token.clone(), id.clone()).await;
        assert!(before["placedAt"].is_string());
        assert!(before["firstOpenedAt"].is_null());
        assert_eq!(before["log"][0]["event"], "placed");

        // The citizen sees it, opens it (recorded once), downloads the attachment.
        let c = logged_in(&s.base, &s.demo.citizen.username, &s.demo.citizen.password).await;
        let list = c
            .get(format!("{}/postfach", s.base))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(list.contains("Ihr Bescheid (Test)"));
        let page = c
            .get(format!("{}/postfach/{id}", s.base))
            .send()
            .await
            .unwrap();
        assert_eq!(page.status(), StatusCode::OK);
        let html = page.text().await.unwrap();
        assert!(html.contains("Zweiter Absatz."));
        let file = c
            .get(format!("{}/postfach/{id}/anhang/0", s.base))
            .send()
            .await
            .unwrap();
        assert_eq!(file.status(), StatusCode::OK);
        assert!(
            file.headers()["content-disposition"]
                .to_str()
                .unwrap()
                .starts_with("attachment")
        );
        assert_eq!(file.bytes().await.unwrap().to_vec(), pdf);
        let after = status(token.clone(), id.clone()).await;
        assert!(after["firstOpenedAt"].is_string());
        let events: Vec<&str> = after["log"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["event"].as_str().unwrap())
            .collect();
        assert!(events.contains(&"opened"));

        // The reply with a file goes back to the authority.
        let form = reqwest::multipart::Form::new()
            .text("csrf_token", csrf_of(&html))
            .text("antwort", "Danke, ich zahle per Lastschrift.")
            .part(
                "anhang",
                reqwest::multipart::Part::bytes(b"Mandat".to_vec())
                    .file_name("mandat.txt")
                    .mime_str("text/plain")
                    .unwrap(),
            );
        let res = c
            .post(format!("{}/postfach/{id}/antwort", s.base))
            .multipart(form)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::SEE_OTHER);
        let replies: Value = client()
            .get(format!("{}/api/postfach/v1/replies", s.base))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let reply = replies["replies"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["inReplyTo"] == id.as_str())
            .unwrap()
            .clone();
        assert_eq!(reply["body"], "Danke, ich zahle per Lastschrift.");
        let file = client()
            .get(format!(
                "{messages}/{}/attachments/0",
                reply["id"].as_str().unwrap()
            ))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        assert_eq!(file.bytes().await.unwrap().as_ref(), b"Mandat");

        // A forged reply (no CSRF token) is refused and stores nothing.
        let res = c
            .post(format!("{}/postfach/{id}/antwort", s.base))
            .multipart(reqwest::multipart::Form::new().text("antwort", "gefälscht"))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::UNPROCESSABLE_ENTITY);

        // Another citizen cannot read it.
        let other = logged_in(
            &s.base,
            &s.demo.citizen2.username,
            &s.demo.citizen2.password,
        )
        .await;
        let res = other
            .get(format!("{}/postfach/{id}", s.base))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::NOT_FOUND);
        let res = other
            .get(format!("{}/postfach/{id}/anhang/0", s.base))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::NOT_FOUND);
    }
}

#[tokio::test]
async fn postfach_messages_above_the_session_level_stay_closed() {
    for s in servers() {
        let token = postfach_token(s).await;
        let res = client()
            .post(format!("{}/api/postfach/v1/messages", s.base))
            .bearer_auth(&token)
            .json(&serde_json::json!({
                "recipient": s.demo.postfach_api.citizen_postfach_ref,
                "subject": "Nur mit Ausweis",
                "body": "Geheim",
                "minTrustLevel": 3,
            }))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::CREATED);
        let id = res.json::<Value>().await.unwrap()["id"]
            .as_str()
            .unwrap()
            .to_owned();
        let c = logged_in(&s.base, &s.demo.citizen.username, &s.demo.citizen.password).await;
        let list = c
            .get(format!("{}/postfach", s.base))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(
            !list.contains("Nur mit Ausweis"),
            "subject hidden in the list"
        );
        let res = c
            .get(format!("{}/postfach/{id}", s.base))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::FORBIDDEN);
        assert!(!res.text().await.unwrap().contains("Geheim"));
        // Not opened: the authority still sees no first opening.
        let status: Value = client()
            .get(format!("{}/api/postfach/v1/messages/{id}", s.base))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert!(status["firstOpenedAt"].is_null());
    }
}

#[tokio::test]
async fn account_pages_register_verify_and_protect_sessions() {
    for s in servers() {
        let c = client();
        let email = format!("neu-{}@example.org", uuid::Uuid::new_v4().simple());
        let html = c
            .get(format!("{}/konto/registrieren", s.base))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(html.contains("autocomplete=\"new-password\""));
        // A common password is refused next to the field.
        let res = c
            .post(format!("{}/konto/registrieren", s.base))
            .form(&[
                ("csrf_token", csrf_of(&html).as_str()),
                ("email", email.as_str()),
                ("password", "password1234"),
            ])
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::UNPROCESSABLE_ENTITY);
        let page = res.text().await.unwrap();
        assert!(page.contains("href=\"#password\"") && page.contains("id=\"password-error\""));
        let res = c
            .post(format!("{}/konto/registrieren", s.base))
            .form(&[
                ("csrf_token", csrf_of(&html).as_str()),
                ("email", email.as_str()),
                ("password", "Tannenbaum Fluss Gitarre 9"),
            ])
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::OK);
        // Registering the same address again looks the same.
        let again = c
            .post(format!("{}/konto/registrieren", s.base))
            .form(&[
                ("csrf_token", csrf_of(&html).as_str()),
                ("email", email.as_str()),
                ("password", "Tannenbaum Fluss Gitarre 9"),
            ])
            .send()
            .await
            .unwrap();
        assert_eq!(again.status(), StatusCode::OK);

        // Unverified: login sends a new link instead of logging in.
        let login = |c: reqwest::Client, password: &'static str| {
            let base = s.base.clone();
            let email = email.clone();
            async move {
                let html = c
                    .get(format!("{base}/konto/anmelden"))
                    .send()
                    .await
                    .unwrap()
                    .text()
                    .await
                    .unwrap();
                c.post(format!("{base}/konto/anmelden"))
                    .form(&[
                        ("csrf_token", csrf_of(&html).as_str()),
                        ("email", email.as_str()),
                        ("password", password),
                    ])
                    .send()
                    .await
                    .unwrap()
            }
        };
        assert_eq!(
            login(c.clone(), "Tannenbaum Fluss Gitarre 9")
                .await
                .status(),
            StatusCode::OK
        );
        // The verification link from the demo's mail page.
        let mails = c
            .get(format!("{}/demo/mails", s.base))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let token = mails
            .split("konto&#x2f;bestaetigen?token=")
            .nth(1)
            .unwrap()
            .split('&')
            .next()
            .unwrap()
            .to_owned();
        let res = c
            .get(format!("{}/konto/bestaetigen?token={token}", s.base))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::OK);
        let res = login(c.clone(), "Tannenbaum Fluss Gitarre 9").await;
        assert_eq!(res.status(), StatusCode::SEE_OTHER);
        let cookie = res
            .headers()
            .get_all("set-cookie")
            .iter()
            .map(|v| v.to_str().unwrap().to_owned())
            .find(|v| v.starts_with("session="))
            .unwrap();
        assert!(cookie.contains("HttpOnly") && cookie.contains("SameSite=Lax"));
        let overview = c.get(format!("{}/konto", s.base)).send().await.unwrap();
        assert_eq!(overview.status(), StatusCode::OK);
        let html = overview.text().await.unwrap();
        assert!(html.contains(&email));

        // Wrong passwords: the same message for a known and an unknown address.
        let fail_known = login(client(), "Falsches Passwort 123").await;
        assert_eq!(fail_known.status(), StatusCode::UNPROCESSABLE_ENTITY);

        // Logout ends the session.
        let res = c
            .post(format!("{}/konto/abmelden", s.base))
            .form(&[("csrf_token", csrf_of(&html).as_str())])
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::OK);
        let res = c.get(format!("{}/konto", s.base)).send().await.unwrap();
        assert_eq!(res.status(), StatusCode::SEE_OTHER);
    }
}

#[tokio::test]
async fn admins_see_the_outbox_without_bodies() {
    for s in servers() {
        let res = client()
            .get(format!("{}/api/admin/v1/mails?limit=500", s.base))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
        let body: Value = client()
            .get(format!("{}/api/admin/v1/mails?limit=500", s.base))
            .bearer_auth(ADMIN_TOKEN)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let mails = body["mails"].as_array().unwrap();
        // The demo's Postfach notices wait there (the test server has no relay).
        assert!(
            mails
                .iter()
                .any(|m| m["purpose"] == "postfach_notice" && m["status"] == "pending")
        );
        assert!(
            mails
                .iter()
                .all(|m| m.get("body").is_none() && m.get("body_text").is_none())
        );
    }
}

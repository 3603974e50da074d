//! What a test makes is gone after it, also when it panics: the schema of a `TestSchema` whose
//! test panicked no longer exists on the shared PostgreSQL.

use beacon_testkit::{TestSchema, postgres_url};

async fn schema_exists(name: &str) -> bool {
    let (client, connection) = tokio_postgres::connect(&postgres_url(), tokio_postgres::NoTls)
        .await
        .expect("PostgreSQL must run (scripts/services up)");
    tokio::spawn(connection);
    let row = client
        .query_one(
            "SELECT EXISTS (SELECT 1 FROM information_schema.schemata WHERE schema_name = $1)",
            &[&name],
        )
        .await
        .expect("query");
    row.get(0)
}

#[tokio::test]
async fn a_panicking_tests_schema_is_dropped() {
    let (names, made) = std::sync::mpsc::channel();
    let test = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        rt.block_on(async {
            let schema = TestSchema::migrated("panics", 1).await;
            names.send(schema.name.clone()).expect("send");
            panic!("the test fails while its schema exists");
        })
    });
    assert!(test.join().is_err(), "the test panicked");
    let name = made.recv().expect("the schema's name");
    assert!(!schema_exists(&name).await, "{name} is left behind");

    let kept = TestSchema::migrated("kept", 1).await;
    assert!(
        schema_exists(&kept.name).await,
        "the check sees a live schema"
    );
}

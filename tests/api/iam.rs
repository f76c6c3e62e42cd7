//! The call recorder that `make iam` judges: each function's calls are
//! attributed to that function, with the route it served, in IAM's terms.
//! If attribution slipped (every call under one function, or none under
//! the route), the IAM check would judge the wrong policies.

use infra::calls::{Call, UNMAPPED};
use tests::{TestApp, put_presigned, upload_request};

fn actions_of<'a>(calls: &'a [Call], function: &str, route: &str) -> Vec<&'a str> {
    calls
        .iter()
        .filter(|call| call.function == function && call.route.as_deref() == Some(route))
        .flat_map(|call| call.authorizations.iter().map(|a| a.action.as_str()))
        .collect()
}

#[tokio::test]
async fn each_call_is_recorded_as_its_functions_with_the_route_it_served() {
    let app = TestApp::spawn().await;
    let alice = app.signed_up_user().await;
    let calls = app.calls.calls();
    let registering = actions_of(&calls, "AuthFunction", "POST /api/v1/auth/register");
    assert!(
        registering.contains(&"dynamodb:PutItem"),
        "register writes the user in a transaction of puts: {registering:?}"
    );
    assert!(
        !registering.contains(&"ses:SendEmail"),
        "register sends no email itself: {registering:?}"
    );
    assert!(
        calls.iter().all(|call| call.function == "AuthFunction"),
        "only the auth function ran: {calls:#?}"
    );

    let me = app.get_as("/api/v1/users/me", &alice.access_token).await;
    assert_eq!(me.status, 200);
    let calls = app.calls.calls();
    let reading = actions_of(&calls, "UsersFunction", "GET /api/v1/users/me");
    assert!(reading.contains(&"dynamodb:BatchGetItem"), "{reading:?}");
    // The verification email goes from the stream function, here on the
    // sweep's schedule, which reads the due index.
    app.run_sweep().await;
    let calls = app.calls.calls();
    let sweeping = actions_of(&calls, "StreamFunction", infra::schedule::SCHEDULE_ROUTE);
    assert!(sweeping.contains(&"ses:SendEmail"), "{sweeping:?}");
    assert!(sweeping.contains(&"dynamodb:Query"), "{sweeping:?}");
    for call in &calls {
        for authorization in &call.authorizations {
            assert_ne!(authorization.action, UNMAPPED, "{call:#?}");
            assert!(
                authorization.resource.contains(&app.storage.table_name)
                    || authorization.action == "ses:SendEmail",
                "every call is on this test's own table: {call:#?}"
            );
        }
    }
}

#[tokio::test]
async fn a_presigned_upload_is_the_signers_put_and_a_socket_records_its_route_key() {
    let app = TestApp::spawn().await;
    let alice = app.signed_up_user().await;
    let upload = app
        .create_upload(&alice.access_token, upload_request(64))
        .await;
    let before = app.calls.calls().len();
    let status = put_presigned(&upload.upload_url, &upload.upload_headers, vec![0; 64]).await;
    assert_eq!(status, 200);
    let calls = app.calls.calls();
    let put = &calls[before..];
    assert_eq!(put.len(), 1, "{put:#?}");
    assert_eq!(put[0].function, "UploadsFunction");
    assert_eq!(put[0].authorizations[0].action, "s3:PutObject");
    assert!(
        put[0].authorizations[0].resource.starts_with(&format!(
            "arn:aws:s3:::{}/uploads/",
            app.storage.bucket_name
        )),
        "{put:#?}"
    );

    let socket = app
        .ws_connect(Some(&alice.access_token))
        .await
        .expect("connects");
    drop(socket);
    let calls = app.calls.calls();
    let connecting = actions_of(&calls, "WebSocketFunction", "$connect");
    assert!(connecting.contains(&"dynamodb:PutItem"), "{connecting:?}");
    assert!(
        connecting.contains(&"dynamodb:ConditionCheckItem"),
        "{connecting:?}"
    );
}

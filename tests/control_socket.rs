//! The control server in-process, over real sockets: mode 0600, a socket in use, bad
//! frames answered without disturbing anyone else, a slow actor that blocks nobody, and
//! the TCP listener's challenge–response (missing and wrong secrets refused, counted).

use std::os::unix::fs::PermissionsExt as _;
use std::sync::Arc;
use std::time::Duration;

use bytes::{BufMut as _, BytesMut};
use futures::{SinkExt as _, StreamExt as _};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::UnixStream;
use tokio::sync::Semaphore;
use tokio_util::codec::Framed;
use vortex::actors::control::{
    ClientError, ControlClient, ControlServer, ControlServerConfig, ControlServerError,
    ControlServices, FrameCodec, Secret, TcpControl, MAX_FRAME_BYTES,
};
use vortex::messages::ctl::{CtlBody, CtlCommand, CtlError, CtlRequest, CtlResponse};
use vortex::prelude::*;

const DEADLINE: Duration = Duration::from_secs(20);

/// An actor whose handler says it entered, then waits until the test lets it go.
struct Slow {
    gate: Arc<Semaphore>,
    entered: Arc<Semaphore>,
}

impl Actor for Slow {
    type Message = ();
    async fn handle(&mut self, _: (), _: &mut Context<Self>) -> Result<(), ActorError> {
        self.entered.add_permits(1);
        let _permit = self.gate.acquire().await;
        Ok(())
    }
}

/// A runtime with the slow actor; its gate (add a permit to let a handler finish) and
/// its `entered` signal (a permit each time a handler starts).
async fn runtime() -> (Runtime, Gates) {
    let rt = Runtime::builder()
        .ask_timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    let gates = Gates {
        gate: Arc::new(Semaphore::new(0)),
        entered: Arc::new(Semaphore::new(0)),
    };
    let slow = rt.spawn("slow", {
        let (gate, entered) = (Arc::clone(&gates.gate), Arc::clone(&gates.entered));
        move || Slow {
            gate: Arc::clone(&gate),
            entered: Arc::clone(&entered),
        }
    });
    slow.await.unwrap();
    (rt, gates)
}

struct Gates {
    gate: Arc<Semaphore>,
    entered: Arc<Semaphore>,
}

async fn serve(rt: &Runtime, config: ControlServerConfig) -> ControlServer {
    let services = ControlServices {
        observer: rt.observer(),
        telemetry: None,
        audit: None,
    };
    ControlServer::start(config, services).await.unwrap()
}

type Raw = Framed<UnixStream, FrameCodec<CtlResponse, CtlRequest>>;

async fn raw(path: &std::path::Path) -> Raw {
    Framed::new(UnixStream::connect(path).await.unwrap(), FrameCodec::new())
}

async fn next(framed: &mut Raw) -> Option<CtlResponse> {
    match tokio::time::timeout(DEADLINE, framed.next())
        .await
        .expect("an answer in time")
    {
        Some(Ok(Ok(response))) => Some(response),
        Some(other) => panic!("bad answer: {other:?}"),
        None => None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_socket_is_private_and_a_second_server_is_refused() {
    let (rt, _gate) = runtime().await;
    let directory = tempfile::tempdir().unwrap();
    let path = directory.path().join("control.sock");
    let config = ControlServerConfig {
        socket: Some(path.clone()),
        tcp: None,
    };
    let server = serve(&rt, config.clone()).await;
    let mode = std::fs::metadata(&path).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    let services = ControlServices {
        observer: rt.observer(),
        telemetry: None,
        audit: None,
    };
    let second = ControlServer::start(config.clone(), services.clone()).await;
    assert!(
        matches!(second, Err(ControlServerError::SocketInUse(_))),
        "{second:?}"
    );
    server.shutdown().await;
    assert!(!path.exists());
    // A socket file left by a dead process is replaced.
    let stale = std::os::unix::net::UnixListener::bind(&path).unwrap();
    drop(stale);
    let server = ControlServer::start(config, services).await.unwrap();
    let mut client = ControlClient::connect_unix(&path).await.unwrap();
    assert_eq!(client.list().await.unwrap()[0].name, "slow");
    server.shutdown().await;
    let long = directory.path().join("x".repeat(110));
    let config = ControlServerConfig {
        socket: Some(long),
        tcp: None,
    };
    let services = ControlServices {
        observer: rt.observer(),
        telemetry: None,
        audit: None,
    };
    let error = ControlServer::start(config, services).await.unwrap_err();
    assert!(
        matches!(
            error,
            ControlServerError::SocketPathTooLong { max: 107, .. }
        ),
        "{error}"
    );
    rt.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_frames_get_an_error_and_the_server_keeps_serving() {
    let (rt, _gate) = runtime().await;
    let directory = tempfile::tempdir().unwrap();
    let path = directory.path().join("control.sock");
    let server = serve(
        &rt,
        ControlServerConfig {
            socket: Some(path.clone()),
            tcp: None,
        },
    )
    .await;

    // Wrong version, then garbage bincode, then a good request on the same connection.
    let mut stream = UnixStream::connect(&path).await.unwrap();
    let mut bytes = BytesMut::new();
    for (version, payload) in [(9u8, &[0u8][..]), (1, &[0xff, 0xff, 0xff][..])] {
        bytes.put_u32(payload.len() as u32 + 1);
        bytes.put_u8(version);
        bytes.extend_from_slice(payload);
    }
    stream.write_all(&bytes).await.unwrap();
    let mut framed: Raw = Framed::new(stream, FrameCodec::new());
    let first = next(&mut framed).await.unwrap();
    assert_eq!(
        first.body,
        CtlBody::Error(CtlError::Version {
            got: 9,
            supported: 1
        })
    );
    let second = next(&mut framed).await.unwrap();
    assert!(
        matches!(second.body, CtlBody::Error(CtlError::Malformed(_))),
        "{second:?}"
    );
    framed
        .send(CtlRequest {
            id: 5,
            command: CtlCommand::List,
        })
        .await
        .unwrap();
    let listed = next(&mut framed).await.unwrap();
    assert_eq!(listed.id, 5);
    assert!(matches!(listed.body, CtlBody::Actors(_)));

    // An oversized header: an error, then the connection is closed.
    let mut stream = UnixStream::connect(&path).await.unwrap();
    stream
        .write_all(&(MAX_FRAME_BYTES as u32 + 1).to_be_bytes())
        .await
        .unwrap();
    let mut oversized: Raw = Framed::new(stream, FrameCodec::new());
    let answer = next(&mut oversized).await.unwrap();
    assert!(matches!(
        answer.body,
        CtlBody::Error(CtlError::Oversized { .. })
    ));
    assert!(
        next(&mut oversized).await.is_none(),
        "closed after an oversized frame"
    );

    // A truncated frame, then the client hangs up: the server just closes it.
    let mut stream = UnixStream::connect(&path).await.unwrap();
    stream.write_all(&[0, 0, 0, 9, 1, 2]).await.unwrap();
    stream.shutdown().await.unwrap();
    let mut rest = Vec::new();
    let read = tokio::time::timeout(DEADLINE, stream.read_to_end(&mut rest)).await;
    assert!(read.is_ok());

    // Everyone else is still served.
    let mut client = ControlClient::connect_unix(&path).await.unwrap();
    assert_eq!(client.list().await.unwrap().len(), 1);
    assert!(server.bad_frames() >= 4, "{}", server.bad_frames());
    server.shutdown().await;
    rt.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_actor_blocks_no_other_request_or_client() {
    let (rt, gates) = runtime().await;
    let directory = tempfile::tempdir().unwrap();
    let path = directory.path().join("control.sock");
    let server = serve(
        &rt,
        ControlServerConfig {
            socket: Some(path.clone()),
            tcp: None,
        },
    )
    .await;
    // The slow actor is inside a handler: its control lane waits for it.
    let slow: Addr<Slow> = rt.lookup("slow").unwrap();
    slow.tell(()).await.unwrap();
    let _inside = tokio::time::timeout(DEADLINE, gates.entered.acquire())
        .await
        .expect("the handler starts")
        .unwrap();
    let mut pipelined = raw(&path).await;
    let status = CtlCommand::Control {
        actor: "slow".into(),
        command: Control::Status,
    };
    pipelined
        .send(CtlRequest {
            id: 1,
            command: status,
        })
        .await
        .unwrap();
    pipelined
        .send(CtlRequest {
            id: 2,
            command: CtlCommand::List,
        })
        .await
        .unwrap();
    // The later request on the same connection is answered first …
    assert_eq!(next(&mut pipelined).await.unwrap().id, 2);
    // … and another client is served meanwhile.
    let mut other = ControlClient::connect_unix(&path).await.unwrap();
    assert_eq!(other.list().await.unwrap().len(), 1);
    gates.gate.add_permits(1);
    let answer = next(&mut pipelined).await.unwrap();
    assert_eq!(answer.id, 1);
    assert!(matches!(
        answer.body,
        CtlBody::Control(Ok(ControlReply::Status(_)))
    ));
    server.shutdown().await;
    rt.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tcp_clients_must_answer_the_challenge() {
    let (rt, _gate) = runtime().await;
    let secret = Secret::new(b"the shared secret".to_vec()).unwrap();
    let server = serve(
        &rt,
        ControlServerConfig {
            socket: None,
            tcp: Some(TcpControl {
                addr: "127.0.0.1:0".parse().unwrap(),
                secret: secret.clone(),
            }),
        },
    )
    .await;
    let addr = server.tcp_addr().unwrap();

    let wrong = Secret::new(b"a guess".to_vec()).unwrap();
    let refused = ControlClient::connect_tcp(addr, &wrong).await;
    assert!(matches!(refused, Err(ClientError::Refused)), "{refused:?}");
    assert_eq!(server.refused(), 1);

    // Skipping the answer: the first request is refused and the connection closed.
    let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut framed = Framed::new(stream, FrameCodec::<CtlResponse, CtlRequest>::new());
    let challenge = framed.next().await.unwrap().unwrap().unwrap();
    assert!(matches!(challenge.body, CtlBody::Challenge { ref nonce } if nonce.len() == 32));
    framed
        .send(CtlRequest {
            id: 1,
            command: CtlCommand::List,
        })
        .await
        .unwrap();
    let answer = framed.next().await.unwrap().unwrap().unwrap();
    assert_eq!(answer.body, CtlBody::Error(CtlError::Unauthenticated));
    assert!(framed.next().await.is_none());
    assert_eq!(server.refused(), 2);

    let mut client = ControlClient::connect_tcp(addr, &secret).await.unwrap();
    assert_eq!(client.list().await.unwrap()[0].name, "slow");
    let outcome = client.control("nobody", Control::Pause).await.unwrap();
    assert_eq!(outcome, Err(ControlError::UnknownActor("nobody".into())));
    assert_eq!(server.refused(), 2);
    server.shutdown().await;
    rt.shutdown().await;
}

/// Random bytes (alone, or after a valid request) sent to a live server: it answers or
/// closes within the deadline, and a new client is served afterwards. Bounded cases.
#[test]
fn random_bytes_on_the_socket_never_stop_the_server() {
    use proptest::prelude::*;
    use proptest::test_runner::{Config, TestRunner};

    let tokio = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let directory = tempfile::tempdir().unwrap();
    let path = directory.path().join("control.sock");
    let (rt, server) = tokio.block_on(async {
        let (rt, _gates) = runtime().await;
        let config = ControlServerConfig {
            socket: Some(path.clone()),
            tcp: None,
        };
        let server = serve(&rt, config).await;
        (rt, server)
    });
    let mut runner = TestRunner::new(Config {
        cases: 48,
        failure_persistence: None,
        ..Config::default()
    });
    let strategy = (
        proptest::collection::vec(any::<u8>(), 0..512),
        any::<bool>(),
    );
    runner
        .run(&strategy, |(garbage, after_a_request)| {
            tokio.block_on(async {
                let mut bytes = BytesMut::new();
                if after_a_request {
                    let mut codec = FrameCodec::<CtlResponse, CtlRequest>::new();
                    let request = CtlRequest {
                        id: 1,
                        command: CtlCommand::List,
                    };
                    tokio_util::codec::Encoder::encode(&mut codec, request, &mut bytes).unwrap();
                }
                bytes.extend_from_slice(&garbage);
                let mut stream = UnixStream::connect(&path).await.unwrap();
                // The server may close first (an oversized header): a write error is fine.
                let _ = stream.write_all(&bytes).await;
                let _ = stream.shutdown().await;
                let mut answers = Vec::new();
                let read = tokio::time::timeout(DEADLINE, stream.read_to_end(&mut answers)).await;
                assert!(read.is_ok(), "the server answers or closes in time");
                let mut client = ControlClient::connect_unix(&path).await.unwrap();
                assert_eq!(client.list().await.unwrap().len(), 1);
            });
            Ok(())
        })
        .unwrap();
    tokio.block_on(async {
        server.shutdown().await;
        rt.shutdown().await;
    });
}

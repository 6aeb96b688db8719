//! [`ControlClient`]: connects to a [`ControlServer`](crate::control::ControlServer) over
//! its Unix socket or its TCP listener (answering the challenge) and sends requests.

use std::net::SocketAddr;
use std::path::Path;

use futures::{SinkExt as _, StreamExt as _};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpStream, UnixStream};
use tokio_util::codec::Framed;
use vortex_messages::ctl::{CtlBody, CtlCommand, CtlRequest, CtlResponse};
use vortex_messages::telemetry::TelemetryEvent;
use vortex_messages::{Control, ControlError, ControlReply, StatusReport};

use crate::control::{auth, ClientError, FrameCodec, Secret};

/// A byte stream the client can talk over.
trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// One connection to a control server. Requests are sent one at a time.
pub struct ControlClient {
    framed: Framed<Box<dyn Io>, FrameCodec<CtlResponse, CtlRequest>>,
    next_id: u64,
}

impl std::fmt::Debug for ControlClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ControlClient")
            .field("next_id", &self.next_id)
            .finish_non_exhaustive()
    }
}

impl ControlClient {
    /// Connects to the Unix socket at `path`.
    pub async fn connect_unix(path: impl AsRef<Path>) -> Result<ControlClient, ClientError> {
        let path = path.as_ref();
        let stream = UnixStream::connect(path)
            .await
            .map_err(|source| ClientError::Connect {
                target: path.display().to_string(),
                source,
            })?;
        Ok(Self::over(Box::new(stream)))
    }

    /// Connects to the TCP listener at `addr` and answers its challenge with `secret`.
    pub async fn connect_tcp(
        addr: SocketAddr,
        secret: &Secret,
    ) -> Result<ControlClient, ClientError> {
        let stream = TcpStream::connect(addr)
            .await
            .map_err(|source| ClientError::Connect {
                target: addr.to_string(),
                source,
            })?;
        let mut client = Self::over(Box::new(stream));
        let nonce = match client.receive().await?.body {
            CtlBody::Challenge { nonce } => nonce,
            other => {
                return Err(ClientError::Handshake(format!(
                    "expected a challenge, got {other:?}"
                )))
            }
        };
        let mac = auth::respond(secret, &nonce);
        let id = client.send(CtlCommand::Authenticate { mac }).await?;
        match client.receive().await {
            Ok(CtlResponse {
                id: answered,
                body: CtlBody::Authenticated,
            }) if answered == id => Ok(client),
            Ok(CtlResponse {
                body: CtlBody::Error(_),
                ..
            })
            | Err(ClientError::Closed) => Err(ClientError::Refused),
            Ok(other) => Err(ClientError::Handshake(format!("unexpected {other:?}"))),
            Err(error) => Err(error),
        }
    }

    fn over(stream: Box<dyn Io>) -> ControlClient {
        ControlClient {
            framed: Framed::new(stream, FrameCodec::new()),
            next_id: 1,
        }
    }

    async fn send(&mut self, command: CtlCommand) -> Result<u64, ClientError> {
        let id = self.next_id;
        self.next_id += 1;
        self.framed.send(CtlRequest { id, command }).await?;
        Ok(id)
    }

    async fn receive(&mut self) -> Result<CtlResponse, ClientError> {
        match self.framed.next().await {
            Some(Ok(Ok(response))) => Ok(response),
            Some(Ok(Err(error))) | Some(Err(error)) => Err(error.into()),
            None => Err(ClientError::Closed),
        }
    }

    /// Sends `command` and waits for its answer (skipping answers to other ids).
    pub async fn request(&mut self, command: CtlCommand) -> Result<CtlBody, ClientError> {
        let id = self.send(command).await?;
        loop {
            let response = self.receive().await?;
            if response.id == id {
                return Ok(response.body);
            }
            if let CtlBody::Error(error) = response.body {
                return Err(ClientError::Server(error));
            }
        }
    }

    /// Every registered actor's status.
    pub async fn list(&mut self) -> Result<Vec<StatusReport>, ClientError> {
        match self.request(CtlCommand::List).await? {
            CtlBody::Actors(actors) => Ok(actors),
            CtlBody::Error(error) => Err(ClientError::Server(error)),
            other => Err(ClientError::Unexpected(format!("{other:?}"))),
        }
    }

    /// Sends a control command to `actor`; the outer error is the transport's, the
    /// inner one the actor's (or the registry's: an unknown name).
    pub async fn control(
        &mut self,
        actor: &str,
        command: Control,
    ) -> Result<Result<ControlReply, ControlError>, ClientError> {
        let command = CtlCommand::Control {
            actor: actor.to_owned(),
            command,
        };
        match self.request(command).await? {
            CtlBody::Control(outcome) => Ok(outcome),
            CtlBody::Error(error) => Err(ClientError::Server(error)),
            other => Err(ClientError::Unexpected(format!("{other:?}"))),
        }
    }

    /// Subscribes to telemetry; read the stream with [`ControlClient::next_event`].
    pub async fn subscribe_events(&mut self) -> Result<(), ClientError> {
        self.send(CtlCommand::Events).await.map(|_| ())
    }

    /// The next telemetry event after [`ControlClient::subscribe_events`]; `None` when
    /// the server closed the connection.
    pub async fn next_event(&mut self) -> Result<Option<TelemetryEvent>, ClientError> {
        match self.receive().await {
            Ok(CtlResponse {
                body: CtlBody::Event(event),
                ..
            }) => Ok(Some(event)),
            Ok(CtlResponse {
                body: CtlBody::Error(error),
                ..
            }) => Err(ClientError::Server(error)),
            Ok(other) => Err(ClientError::Unexpected(format!("{other:?}"))),
            Err(ClientError::Closed) => Ok(None),
            Err(error) => Err(error),
        }
    }
}

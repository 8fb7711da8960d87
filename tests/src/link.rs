//! A TCP link on loopback to a real server (PostgreSQL, say) that a test can cut and restore:
//! what a store that is briefly unreachable looks like to weft, a network partition rather than
//! a table renamed behind its back.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// Forwards every connection made to [`Link::addr`] to the target, until [`Link::cut`].
pub struct Link {
    /// Where to connect instead of the target.
    pub addr: SocketAddr,
    up: Arc<AtomicBool>,
    /// Bumped by each cut: every connection open at that moment is dropped.
    cuts: watch::Sender<u32>,
    refused: Arc<AtomicU32>,
    accept: tokio::task::JoinHandle<()>,
}

impl Link {
    /// A link to `target`, up.
    pub async fn to(target: SocketAddr) -> Link {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let up = Arc::new(AtomicBool::new(true));
        let refused = Arc::new(AtomicU32::new(0));
        let (cuts, _) = watch::channel(0);
        let accept = tokio::spawn({
            let (up, refused, cuts) = (Arc::clone(&up), Arc::clone(&refused), cuts.clone());
            async move {
                while let Ok((client, _)) = listener.accept().await {
                    if !up.load(Ordering::SeqCst) {
                        // Accepted and closed at once, as a peer that is gone would look.
                        refused.fetch_add(1, Ordering::SeqCst);
                        drop(client);
                        continue;
                    }
                    tokio::spawn(forward(client, target, cuts.subscribe()));
                }
            }
        });
        Link {
            addr,
            up,
            cuts,
            refused,
            accept,
        }
    }

    /// Drops every connection through the link and closes each new one at once, until
    /// [`Link::restore`].
    pub fn cut(&self) {
        self.up.store(false, Ordering::SeqCst);
        self.cuts.send_modify(|n| *n += 1);
    }

    /// Lets new connections through again.
    pub fn restore(&self) {
        self.up.store(true, Ordering::SeqCst);
    }

    /// How many connections were closed unanswered while the link was cut.
    pub fn refused(&self) -> u32 {
        self.refused.load(Ordering::SeqCst)
    }
}

impl Drop for Link {
    fn drop(&mut self) {
        self.accept.abort();
        self.cuts.send_modify(|n| *n += 1);
    }
}

async fn forward(mut client: TcpStream, target: SocketAddr, mut cuts: watch::Receiver<u32>) {
    let Ok(mut server) = TcpStream::connect(target).await else {
        return;
    };
    tokio::select! {
        _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
        _ = cuts.changed() => {}
    }
}

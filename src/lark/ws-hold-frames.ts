import type * as lark from '@larksuiteoapi/node-sdk';

/** The parts of a `ws` WebSocket this shim uses. */
interface Pausable {
  pause(): void;
  resume(): void;
}

/** The one private member of the SDK's WSClient the shim wraps; checked at run time, not trusted from types. */
interface WSClientInternals {
  wsConfig?: { setWSInstance?: (ws: Pausable | null) => void };
}

/**
 * The SDK's WSClient (1.74) attaches its 'message' listener in communicate(), a few microtasks
 * after the socket's 'open'. A frame that arrives with the upgrade answer, or just behind it, is
 * emitted in between and dropped: never handled, never answered. This pauses the socket the
 * moment the SDK takes it (setWSInstance, called in its 'open' handler) and resumes it on the
 * next turn of the event loop, after those microtasks: such a frame waits in the socket until
 * the listener is there. Nothing is held longer than that turn, whatever a later SDK does.
 *
 * Returns false, and changes nothing, when the SDK no longer has this member; the long
 * connection test then shows the early frame lost again.
 */
export function holdFramesUntilListening(client: lark.WSClient): boolean {
  const config = (client as unknown as WSClientInternals).wsConfig;
  const setInstance = config?.setWSInstance;
  if (!config || typeof setInstance !== 'function') return false;

  config.setWSInstance = (ws) => {
    setInstance.call(config, ws);
    if (!ws || typeof ws.pause !== 'function') return;
    ws.pause();
    setImmediate(() => ws.resume());
  };
  return true;
}

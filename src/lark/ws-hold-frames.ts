import type * as lark from '@larksuiteoapi/node-sdk';

/** The parts of a `ws` WebSocket this shim uses. */
interface Pausable {
  pause(): void;
  resume(): void;
}

/** The SDK's private members the shim reaches; checked at run time, not trusted from types. */
interface WSClientInternals {
  wsConfig?: { setWSInstance?: (ws: Pausable | null) => void; getWSInstance?: () => Pausable | null };
  communicate?: () => void;
}

/**
 * The SDK's WSClient (1.74) attaches its 'message' listener in communicate(), a few microtasks
 * after the socket's 'open'. A frame that arrives with the upgrade answer, or just behind it, is
 * emitted in between and dropped: never handled, never answered. This pauses the socket the
 * moment the SDK takes it (setWSInstance, called in its 'open' handler) and resumes it once
 * communicate() has attached the listener, so such a frame waits in the socket instead.
 *
 * Returns false, and changes nothing, when the SDK no longer has these members; the long
 * connection test then shows the early frame lost again.
 */
export function holdFramesUntilListening(client: lark.WSClient): boolean {
  const internals = client as unknown as WSClientInternals;
  const config = internals.wsConfig;
  const setInstance = config?.setWSInstance;
  const getInstance = config?.getWSInstance;
  const communicate = internals.communicate;
  if (!config || typeof setInstance !== 'function' || typeof getInstance !== 'function' || typeof communicate !== 'function') return false;

  config.setWSInstance = (ws) => {
    setInstance.call(config, ws);
    if (ws && typeof ws.pause === 'function') ws.pause();
  };
  internals.communicate = () => {
    communicate.call(client);
    getInstance.call(config)?.resume();
  };
  return true;
}

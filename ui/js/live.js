// live.js: the dashboard's realtime subscriptions. Each collection is subscribed once for
// the session and the screens share it, adding and removing their own listeners.
//
// Why not one SDK subscription per screen: moving from one screen to the next unsubscribed
// and resubscribed the same topic in one tick. The SDK (0.28) then sends nothing, as the
// server's subscriptions did not change, and in doing so never attaches the new screen's
// listener to the event stream: the messages list and an open message stopped moving after
// a visit to the overview. Kept subscriptions also spare a request per screen change.
import { pb } from './api.js';

const topics = new Map(); // key -> {listeners: Set, ready: Promise}

/**
 * watch(collection, fn, options) calls fn({action, record}) for each change the signed-in
 * user may see; it resolves, once the server has the subscription, to a function that
 * stops fn. options are the SDK's (fields, expand, …).
 */
export async function watch(collection, fn, options) {
	const key = `${collection}\u0000${JSON.stringify(options || {})}`;
	let topic = topics.get(key);
	if (!topic) {
		const listeners = new Set();
		topic = { listeners, ready: null };
		topic.ready = pb.collection(collection).subscribe('*', (e) => {
			for (const l of [...listeners]) {
				try { l(e); } catch (err) { console.error(err); } // one screen's error never silences another
			}
		}, options).catch((err) => {
			topics.delete(key); // the next watch tries again
			throw err;
		});
		topics.set(key, topic);
	}
	const { listeners } = topic;
	listeners.add(fn);
	try {
		await topic.ready;
	} catch (err) {
		listeners.delete(fn);
		throw err;
	}
	return () => { listeners.delete(fn); };
}

/** stop drops every subscription (signing out). */
export function stop() {
	topics.clear();
	return pb.realtime.unsubscribe();
}

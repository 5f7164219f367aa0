// api.js: the one PocketBase client, the clinicmsg routes, and how an API error becomes
// text for a person.
import PocketBase from '../vendor/pocketbase/pocketbase.es.mjs';
import { t, getLang } from './i18n.js';
import { apiCodeText } from './codes.js';

export { reasonText } from './codes.js';

export const pb = new PocketBase(window.location.origin);
// The SDK cancels a pending request when another one goes to the same path. The dashboard
// means its parallel requests (three statistics ranges, a list and a dialog), so they opt
// out; the realtime subscription's own requests keep their key, so that only the newest
// list of subscriptions is sent (live.js).
const rawSend = pb.send.bind(pb);
pb.send = (path, options = {}) => {
	if (!('requestKey' in options)) options = { ...options, requestKey: null };
	return rawSend(path, options);
};

export function stats(days) {
	return pb.send('/api/clinicmsg/stats', { query: { days } });
}

export function health() {
	return pb.send('/api/clinicmsg/health', {});
}

export function preview(body) {
	return pb.send('/api/clinicmsg/preview', { method: 'POST', body });
}

export function retry(id) {
	return pb.send(`/api/clinicmsg/messages/${encodeURIComponent(id)}/retry`, { method: 'POST' });
}

/** the {field: message} of a 4xx answer (PocketBase's `data`) */
export function fieldErrors(err) {
	const data = err?.response?.data;
	const out = {};
	if (data && typeof data === 'object') {
		for (const [k, v] of Object.entries(data)) {
			out[k] = apiCodeText(v);
		}
	}
	return out;
}

/** the template variable a 400 answer says is missing ("" when it is another error) */
export function missingVariable(err) {
	const v = err?.response?.data?.context;
	if (!v || v.code !== 'validation_missing_variable') return '';
	return /missing variable "([^"]+)"/.exec(v.message || '')?.[1] || '';
}

/** one line a person can act on */
export function errorText(err) {
	if (!err) return '';
	if (err.isAbort) return t('error.aborted');
	const status = err.status;
	if (status === 0) return t('error.network');
	if (status === 401) return t('error.session');
	if (status === 404) return t('error.not_found');
	if (status >= 500) return t('error.server');
	// A 4xx: the first field's code when there is one, else a text for the status; the
	// server's English sentence only on an English screen.
	const first = Object.values(err.response?.data || {}).find((v) => v && typeof v === 'object' && v.code);
	if (first) return apiCodeText(first);
	const msg = err.response?.message || err.message;
	if (getLang() === 'en' && msg && msg !== 'ClientResponseError') return msg;
	if (status === 403) return t('error.forbidden');
	if (status === 409) return t('error.conflict');
	if (status === 429) return t('error.too_many');
	if (status === 400) return t('error.bad_request');
	return t('error.unknown');
}

// api.js: the one PocketBase client, the clinicmsg routes, and how an API error becomes
// text for a person.
import PocketBase from '../vendor/pocketbase/pocketbase.es.mjs';
import { t, tOr, getLang } from './i18n.js';

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
			out[k] = fieldText(v);
		}
	}
	return out;
}

/** a field error's text: the server's own words in English, a translation in Arabic */
function fieldText(v) {
	if (typeof v === 'string') return v;
	const msg = v?.message || t('error.invalid');
	if (getLang() === 'en' || !v?.code) return msg;
	const name = /"([^"]+)"\s*$/.exec(msg)?.[1] || (/needs missing variable "([^"]+)"/.exec(msg) || [])[1] || '';
	const tr = tOr(`code.${v.code}`, null);
	return tr ? tr.replace('{name}', name) : msg;
}

/** the template variable a 400 answer says is missing ("" when it is another error) */
export function missingVariable(err) {
	const v = err?.response?.data?.context;
	if (!v || v.code !== 'validation_missing_variable') return '';
	return /missing variable "([^"]+)"/.exec(v.message || '')?.[1] || '';
}

/**
 * a message's status_reason for a person: the server writes `code: detail` in English
 * (opted_out: the patient opted out of messages); a known code is said in the dashboard's
 * language, anything else is shown as it came.
 */
export function reasonText(reason) {
	if (!reason) return '';
	const code = /^([a-z_]+):/.exec(reason)?.[1];
	return (code && tOr(`reason.${code}`, null)) || reason;
}

/** one line a person can act on */
export function errorText(err) {
	if (!err) return '';
	if (err.isAbort) return t('error.aborted');
	const status = err.status;
	if (status === 0) return t('error.network');
	if (status === 401) return t('error.session');
	if (status === 403) return err.response?.message || t('error.forbidden');
	if (status === 404) return t('error.not_found');
	if (status >= 500) return t('error.server');
	const msg = err.response?.message || err.message;
	return msg && msg !== 'ClientResponseError' ? msg : t('error.unknown');
}

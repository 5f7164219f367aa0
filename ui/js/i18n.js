// i18n.js: the language (English or Arabic, remembered in localStorage), the page
// direction, and every date and number formatted in the clinic's time zone and the chosen
// locale.
import en from './strings/en.js';
import ar from './strings/ar.js';

const packs = { en, ar };
const LANG_KEY = 'clinicmsg.lang';
const missing = new Set();
window.__missingStrings = missing; // read by the browser tests

let lang = initialLang();
let timeZone = 'Asia/Riyadh';

function initialLang() {
	const saved = localStorage.getItem(LANG_KEY);
	if (saved === 'en' || saved === 'ar') return saved;
	return (navigator.language || '').toLowerCase().startsWith('ar') ? 'ar' : 'en';
}

export function getLang() {
	return lang;
}

/** applies lang to <html> (lang, dir) and remembers it */
export function setLang(l) {
	lang = l === 'ar' ? 'ar' : 'en';
	localStorage.setItem(LANG_KEY, lang);
	applyLang();
}

export function applyLang() {
	document.documentElement.lang = lang;
	document.documentElement.dir = lang === 'ar' ? 'rtl' : 'ltr';
}

export function setTimeZone(tz) {
	try {
		new Intl.DateTimeFormat('en', { timeZone: tz });
		timeZone = tz;
	} catch {
		timeZone = 'Asia/Riyadh';
	}
}

export function getTimeZone() {
	return timeZone;
}

/** t('key', {name: 'x'}) is the string for key in the current language, {name} filled. */
export function t(key, vars) {
	let s = packs[lang][key];
	if (s == null) {
		missing.add(`${lang}:${key}`);
		s = packs.en[key] ?? key;
	}
	if (vars) s = s.replace(/\{(\w+)\}/g, (m, k) => (vars[k] != null ? String(vars[k]) : m));
	return s;
}

/** t for a key that may not exist (a status the server added later): falls back to raw */
export function tOr(key, raw) {
	return packs[lang][key] ?? packs.en[key] ?? raw;
}

/** the keys one language has and the other lacks (the browser tests check it is empty) */
export function untranslated() {
	const a = Object.keys(packs.en), b = Object.keys(packs.ar);
	return [...a.filter((k) => !(k in packs.ar)).map((k) => `ar:${k}`), ...b.filter((k) => !(k in packs.en)).map((k) => `en:${k}`)];
}

export function locale() {
	// Gregorian calendar in Arabic too: appointments are booked by it.
	return lang === 'ar' ? 'ar-SA-u-ca-gregory' : 'en-GB';
}

export function fmtNumber(n, opts) {
	if (n == null || Number.isNaN(Number(n))) return '—';
	return new Intl.NumberFormat(locale(), opts).format(Number(n));
}

/** p is a percentage from 0 to 100 */
export function fmtPercent(p) {
	if (p == null) return '—';
	return new Intl.NumberFormat(locale(), { style: 'percent', maximumFractionDigits: 1 }).format(Number(p) / 100);
}

export function fmtMoney(amount, currency) {
	try {
		return new Intl.NumberFormat(locale(), { style: 'currency', currency, maximumFractionDigits: 4 }).format(amount);
	} catch {
		return `${fmtNumber(amount, { maximumFractionDigits: 4 })} ${currency}`;
	}
}

/** seconds as "850 ms", "2.4 s", "3 min" */
export function fmtSeconds(s) {
	if (s == null) return '—';
	if (s < 1) return t('unit.ms', { n: fmtNumber(Math.round(s * 1000)) });
	if (s < 120) return t('unit.s', { n: fmtNumber(s, { maximumFractionDigits: 1 }) });
	if (s < 7200) return t('unit.min', { n: fmtNumber(s / 60, { maximumFractionDigits: 1 }) });
	return t('unit.h', { n: fmtNumber(s / 3600, { maximumFractionDigits: 1 }) });
}

/** PocketBase's "2026-01-02 10:00:00.000Z" as a Date; null for "" */
export function parseDate(v) {
	if (!v) return null;
	const d = new Date(String(v).replace(' ', 'T'));
	return Number.isNaN(d.getTime()) ? null : d;
}

/** a stored timestamp in the clinic's time zone */
export function fmtDateTime(v, opts = { dateStyle: 'medium', timeStyle: 'short' }) {
	const d = v instanceof Date ? v : parseDate(v);
	if (!d) return '—';
	return new Intl.DateTimeFormat(locale(), { ...opts, timeZone }).format(d);
}

export function fmtTime(v) {
	return fmtDateTime(v, { hour: '2-digit', minute: '2-digit', second: '2-digit', hourCycle: 'h23' });
}

/** a local day "YYYY-MM-DD" (already in the clinic's zone) as text */
export function fmtDay(day, opts = { day: 'numeric', month: 'short' }) {
	const [y, m, d] = day.split('-').map(Number);
	return new Intl.DateTimeFormat(locale(), { ...opts, timeZone: 'UTC' }).format(new Date(Date.UTC(y, m - 1, d, 12)));
}

function wallParts(ms, tz) {
	const dtf = new Intl.DateTimeFormat('en-US', {
		timeZone: tz, hourCycle: 'h23', year: 'numeric', month: '2-digit', day: '2-digit',
		hour: '2-digit', minute: '2-digit', second: '2-digit',
	});
	return Object.fromEntries(dtf.formatToParts(new Date(ms)).map((p) => [p.type, p.value]));
}

function offsetAt(ms, tz) {
	const p = wallParts(ms, tz);
	const asUTC = Date.UTC(+p.year, +p.month - 1, +p.day, +p.hour % 24, +p.minute, +p.second);
	return asUTC - Math.floor(ms / 1000) * 1000;
}

/** the instant of a wall-clock time in the clinic's zone ("2026-01-02", "08:30") */
export function zonedToDate(day, time = '00:00', tz = timeZone) {
	const [y, m, d] = day.split('-').map(Number);
	const [hh, mm] = time.split(':').map(Number);
	const guess = Date.UTC(y, m - 1, d, hh || 0, mm || 0);
	const off = offsetAt(guess, tz);
	let at = guess - off;
	const off2 = offsetAt(at, tz);
	if (off2 !== off) at = guess - off2;
	return new Date(at);
}

/** today in the clinic's zone, "YYYY-MM-DD" */
export function todayLocal(tz = timeZone) {
	const p = wallParts(Date.now(), tz);
	return `${p.year}-${p.month}-${p.day}`;
}

/** a Date as PocketBase stores and filters it: "2026-01-02 05:00:00.000Z" */
export function pbDate(d) {
	return d.toISOString().replace('T', ' ');
}

/** turns Arabic-Indic and Persian digits into ASCII ones */
export function asciiDigits(s) {
	return String(s).replace(/[\u0660-\u0669]/g, (c) => String(c.charCodeAt(0) - 0x0660)).replace(/[\u06f0-\u06f9]/g, (c) => String(c.charCodeAt(0) - 0x06f0));
}

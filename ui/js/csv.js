// csv.js reads a pasted or uploaded recipient list: one phone number a line, or a CSV
// with a header row naming `to` (or phone/mobile), `patient_id` and the template's
// variables, one column each.
import { asciiDigits } from './i18n.js';

/** rows of cells; quotes, doubled quotes and , ; or tab as the separator */
export function parseCSV(text) {
	text = String(text || '').replace(/^\uFEFF/, '');
	const firstLine = text.split(/\r?\n/, 1)[0] || '';
	const sep = [',', ';', '\t'].map((c) => [c, firstLine.split(c).length]).sort((a, b) => b[1] - a[1])[0][0];
	const rows = [];
	let row = [], cell = '', quoted = false;
	for (let i = 0; i < text.length; i++) {
		const c = text[i];
		if (quoted) {
			if (c === '"' && text[i + 1] === '"') { cell += '"'; i++; }
			else if (c === '"') quoted = false;
			else cell += c;
		} else if (c === '"' && cell === '') quoted = true;
		else if (c === sep) { row.push(cell.trim()); cell = ''; }
		else if (c === '\n' || c === '\r') {
			if (c === '\r' && text[i + 1] === '\n') i++;
			row.push(cell.trim()); rows.push(row); row = []; cell = '';
		} else cell += c;
	}
	row.push(cell.trim());
	rows.push(row);
	return rows.filter((r) => r.some((c) => c !== ''));
}

const TO_NAMES = ['to', 'phone', 'mobile', 'number', 'email', 'phone_number', 'mobile_number', 'الجوال', 'الهاتف', 'رقم الجوال', 'رقم الهاتف', 'الرقم', 'البريد'];
const PATIENT_NAMES = ['patient_id', 'patient', 'mrn', 'file_number', 'رقم المريض', 'رقم الملف'];

function norm(s) {
	return String(s).trim().toLowerCase().replace(/\s+/g, '_');
}

function looksLikeRecipient(cell) {
	const c = asciiDigits(cell);
	return /@/.test(c) || (c.replace(/\D/g, '').length >= 5 && !/[a-z\u0621-\u064a]{2,}/i.test(c));
}

/**
 * recipientsFrom(text): {recipients, columns (context variables), rows, header}. A plain
 * list stays a list of strings; with patient ids or variables each becomes {to, patient_id, context}.
 */
export function recipientsFrom(text) {
	const rows = parseCSV(text);
	if (!rows.length) return { recipients: [], columns: [], rows: 0, header: false };
	const first = rows[0].map(norm);
	const header = first.some((c) => TO_NAMES.includes(c) || PATIENT_NAMES.includes(c)) || !rows[0].some(looksLikeRecipient);
	if (!header) {
		return { recipients: rows.map((r) => r[0]).filter(Boolean), columns: [], rows: rows.length, header: false, ignored: rows.some((r) => r.length > 1) };
	}
	let toIdx = first.findIndex((c) => TO_NAMES.includes(c));
	if (toIdx < 0) toIdx = 0;
	const pidIdx = first.findIndex((c) => PATIENT_NAMES.includes(c));
	const columns = rows[0].map((c, i) => ({ name: c.trim(), i })).filter((c) => c.i !== toIdx && c.i !== pidIdx && c.name);
	const body = rows.slice(1);
	const simple = pidIdx < 0 && columns.length === 0;
	const recipients = body.map((r) => {
		if (simple) return r[toIdx] || '';
		const o = { to: r[toIdx] || '' };
		if (pidIdx >= 0 && r[pidIdx]) o.patient_id = r[pidIdx];
		const ctx = {};
		for (const c of columns) if (r[c.i] != null && r[c.i] !== '') ctx[c.name] = r[c.i];
		if (Object.keys(ctx).length) o.context = ctx;
		return o;
	});
	return { recipients, columns: columns.map((c) => c.name), rows: body.length, header: true };
}

// Overview: totals for today and the last 7 and 30 days, success rate, channels,
// statuses, a daily chart, latency, cost (GET /api/clinicmsg/stats) and provider health
// (GET /api/clinicmsg/health). Every section draws what the answer has and says so when a
// part is missing, so an older or newer server never blanks the page.
import uPlot from '../../vendor/uplot/uPlot.esm.js';
import { stats, health, errorText } from '../api.js';
import { healthNoteEl, ltr } from '../codes.js';
import { watch } from '../live.js';
import { h, fill, debounce } from '../dom.js';
import { t, tOr, fmtNumber, fmtPercent, fmtMoney, fmtSeconds, fmtDay, fmtDateTime, fmtTime } from '../i18n.js';

const RANGES = [1, 7, 30];
let period = 7; // the range the detail sections show, kept across visits

export function mount(el, ctx) {
	const data = { stats: {}, health: null, errors: {} };
	let chart = null;
	let alive = true;
	let unsub = null;
	const updated = h('span', { class: 'muted', id: 'overview-updated' });
	const refreshBtn = h('button', { type: 'button', id: 'overview-refresh', onclick: () => load() }, t('overview.refresh'));
	const cards = h('section', { class: 'cards', 'aria-label': t('overview.totals') });
	const periodBar = h('div', { class: 'segmented', role: 'group', 'aria-label': t('overview.period') });
	const detail = h('div', { class: 'overview-grid' });
	const healthBox = h('section', { class: 'panel health', 'aria-labelledby': 'health-title', id: 'health' });
	// The providers' state at a glance, above the fold; the details are further down.
	const healthLink = h('a', {
		href: '#health', class: 'health-link', id: 'health-summary',
		onclick: (ev) => { ev.preventDefault(); healthBox.scrollIntoView({ behavior: 'smooth' }); healthBox.querySelector('h2')?.focus(); },
	});

	fill(el,
		h('div', { class: 'screen-head' },
			h('h1', {}, t('overview.title')),
			h('div', { class: 'head-actions' }, healthLink, updated, refreshBtn)),
		cards,
		h('div', { class: 'period-row' }, h('h2', { class: 'h-inline' }, t('overview.details_for')), periodBar),
		detail,
		healthBox);

	async function load() {
		refreshBtn.disabled = true;
		const calls = [...RANGES.map((d) => stats(d)), health()];
		const res = await Promise.allSettled(calls);
		if (!alive) return;
		refreshBtn.disabled = false;
		RANGES.forEach((d, i) => {
			if (res[i].status === 'fulfilled') {
				data.stats[d] = res[i].value;
				delete data.errors[d];
			} else {
				if (ctx.fail(res[i].reason)) return;
				data.errors[d] = errorText(res[i].reason);
			}
		});
		const hr = res[RANGES.length];
		if (hr.status === 'fulfilled') {
			data.health = hr.value;
			data.healthError = '';
		} else {
			data.healthError = errorText(hr.reason);
		}
		fill(updated, t('overview.updated', { time: fmtTime(new Date()) }));
		draw();
	}

	function draw() {
		drawCards();
		drawPeriod();
		drawDetail();
		drawHealth();
	}

	function drawCards() {
		fill(cards, RANGES.map((d) => {
			const st = data.stats[d];
			const label = t(`overview.range_${d}`);
			if (!st) {
				return h('div', { class: 'card' }, h('h2', { class: 'card-label' }, label),
					h('p', { class: 'card-error' }, data.errors[d] || t('common.loading')));
			}
			return h('div', { class: 'card', id: `card-${d}` },
				h('h2', { class: 'card-label' }, label),
				h('p', { class: 'card-value', id: `total-${d}`, dataset: { value: num(st.total) } }, fmtNumber(st.total ?? 0)),
				h('p', { class: 'card-sub' },
					st.success_rate != null && st.final
						? h('span', { id: `rate-${d}`, dataset: { value: st.success_rate } }, t('overview.success_short', { rate: fmtPercent(st.success_rate) }))
						: h('span', { id: `rate-${d}`, dataset: { value: '' } }, t('overview.no_final'))));
		}));
	}

	function drawPeriod() {
		fill(periodBar, RANGES.map((d) => h('button', {
			type: 'button', id: `period-${d}`, 'aria-pressed': String(d === period),
			onclick: () => { period = d; drawPeriod(); drawDetail(); },
		}, t(`overview.range_${d}`))));
	}

	function drawDetail() {
		if (chart) { chart.destroy(); chart = null; }
		const st = data.stats[period];
		if (!st) {
			fill(detail, h('p', { class: 'notice' }, data.errors[period] || t('common.loading')));
			return;
		}
		const chartBox = h('div', { class: 'chart', dir: 'ltr', id: 'daily-chart' });
		const series = period === 1 ? (data.stats[7]?.by_day || st.by_day) : st.by_day;
		fill(detail,
			panel('success', t('overview.success_rate'), successBlock(st)),
			panel('channels', t('overview.by_channel'), countTable(st.by_channel, 'channel', st.total)),
			panel('statuses', t('overview.by_status'), countTable(st.by_status, 'status', st.total, true)),
			panel('daily', t('overview.daily'), Array.isArray(series) && series.length ? [chartBox, dayTable(series)] : missing(), 'wide'),
			panel('latency', t('overview.latency'), latencyBlock(st.latency)),
			panel('cost', t('overview.cost'), costBlock(st.cost)),
			panel('providers', t('overview.by_provider'), providerBlock(st.by_provider)),
			panel('errors', t('overview.top_errors'), errorsBlock(st.top_errors)));
		if (Array.isArray(series) && series.length) requestAnimationFrame(() => { if (alive) chart = drawChart(chartBox, series); });
	}

	function drawHealth() {
		const hd = data.health;
		fill(healthLink, hd?.status ? [t('health.title'), ': ', badge('health', hd.status)] : '');
		healthLink.hidden = !hd?.status;
		const title = h('h2', { id: 'health-title', tabindex: '-1' }, t('health.title'));
		if (!hd) {
			fill(healthBox, title, h('p', { class: 'notice' }, data.healthError || t('common.loading')));
			return;
		}
		const chs = hd.channels && typeof hd.channels === 'object' ? Object.entries(hd.channels) : [];
		fill(healthBox,
			h('div', { class: 'panel-head' }, title, badge('health', hd.status, 'health-overall')),
			chs.length ? h('div', { class: 'health-grid' }, chs.map(([name, ch]) => channelHealth(name, ch))) : missing(),
			hd.outbox ? outboxBlock(hd.outbox) : null);
	}

	const refreshSoon = debounce(() => load(), 3000);
	pb_subscribe();
	async function pb_subscribe() {
		try {
			const u = await watch('messages', () => refreshSoon());
			if (alive) unsub = u; else u();
		} catch { /* the periodic refresh still runs */ }
	}
	const timer = setInterval(load, 30000);
	draw();
	load();
	return {
		unmount() {
			alive = false;
			clearInterval(timer);
			refreshSoon.cancel();
			if (unsub) unsub();
			if (chart) chart.destroy();
		},
	};
}

function num(v) {
	return v == null ? '' : String(v);
}

function missing() {
	return h('p', { class: 'muted' }, t('overview.not_available'));
}

function panel(id, title, body, extra = '') {
	return h('section', { class: `panel ${extra}`, id: `panel-${id}`, 'aria-labelledby': `panel-${id}-title` },
		h('h3', { id: `panel-${id}-title` }, title), body);
}

export function badge(kind, value, id) {
	return h('span', { class: `badge ${kind}-${value || 'unknown'}`, id, dataset: { status: value || '' } }, tOr(`${kind}.${value}`, value || '—'));
}

function successBlock(st) {
	if (st.success_rate == null) return missing();
	return h('div', { class: 'big-stat' },
		h('p', { class: 'big', id: 'success-rate', dataset: { value: st.success_rate } }, st.final ? fmtPercent(st.success_rate) : '—'),
		h('p', { class: 'muted' }, st.final != null
			? t('overview.success_detail', { ok: fmtNumber(st.successful ?? 0), final: fmtNumber(st.final) })
			: ''),
		st.retried ? h('p', { class: 'muted' }, t('overview.retried', { n: fmtNumber(st.retried), rate: fmtPercent(st.retry_success_rate) })) : null);
}

function countTable(map, kind, total, hideZero = false) {
	if (!map || typeof map !== 'object') return missing();
	const rows = Object.entries(map).filter(([, n]) => !hideZero || n > 0).sort((a, b) => b[1] - a[1]);
	if (!rows.length) return h('p', { class: 'muted' }, t('overview.none'));
	return h('table', { class: 'compact' },
		h('thead', {}, h('tr', {}, h('th', { scope: 'col' }, t(`overview.col_${kind}`)), h('th', { scope: 'col', class: 'num' }, t('overview.col_count')), h('th', { scope: 'col', class: 'share' }, h('span', { class: 'sr-only' }, t('overview.col_share'))))),
		h('tbody', {}, rows.map(([k, n]) => h('tr', { dataset: { key: k, value: n } },
			h('th', { scope: 'row' }, kind === 'status' ? badge('status', k) : tOr(`channel.${k}`, k)),
			h('td', { class: 'num' }, fmtNumber(n)),
			h('td', { class: 'share' }, h('span', { class: 'bar', 'aria-hidden': 'true' }, h('span', { style: `inline-size:${total ? Math.round((100 * n) / total) : 0}%` })))))));
}

function dayTable(series) {
	return h('details', { class: 'day-table' },
		h('summary', {}, t('overview.show_table')),
		h('table', { class: 'compact' },
			h('thead', {}, h('tr', {},
				h('th', { scope: 'col' }, t('overview.col_day')),
				h('th', { scope: 'col', class: 'num' }, t('overview.col_total')),
				h('th', { scope: 'col', class: 'num' }, t('overview.col_failed')),
				h('th', { scope: 'col', class: 'num' }, t('overview.success_rate')))),
			h('tbody', {}, series.map((d) => h('tr', {},
				h('th', { scope: 'row' }, fmtDay(d.date, { weekday: 'short', day: 'numeric', month: 'short' })),
				h('td', { class: 'num' }, fmtNumber(d.total ?? 0)),
				h('td', { class: 'num' }, fmtNumber(d.failed ?? 0)),
				h('td', { class: 'num' }, d.final ? fmtPercent(d.success_rate) : '—'))))));
}

function drawChart(box, series) {
	const width = Math.max(box.clientWidth, 260);
	const labels = series.map((d) => fmtDay(d.date));
	const xs = series.map((_, i) => i);
	// The legend reads the hovered day; with no day hovered, the whole period (never blank).
	const sum = (k) => series.reduce((n, d) => n + (d[k] ?? 0), 0);
	const idle = [labels.length > 1 ? `${labels[0]} – ${labels.at(-1)}` : labels[0] ?? '', fmtNumber(sum('total')), fmtNumber(sum('failed'))];
	const legendValue = (fmt) => (u, v, sidx, idx) => (idx == null || v == null ? idle[sidx] : fmt(v));
	const opts = {
		width, height: 220,
		scales: { x: { time: false, range: [-0.6, series.length - 0.4] }, y: { range: (u, min, max) => [0, Math.max(4, max * 1.15)] } },
		axes: [
			{ splits: () => xs, values: (u, splits) => splits.map((v) => (labels[v] != null && (series.length <= 10 || v % Math.ceil(series.length / 10) === (series.length - 1) % Math.ceil(series.length / 10)) ? labels[v] : '')), gap: 4, size: 36 },
			{ values: (u, splits) => splits.map((v) => fmtNumber(v)), size: 48 },
		],
		legend: { show: true },
		cursor: { drag: { x: false, y: false } },
		series: [
			{ label: t('overview.col_day'), value: legendValue((v) => labels[v] ?? '') },
			{ label: t('overview.col_total'), stroke: '#2563eb', fill: 'rgba(37,99,235,0.35)', width: 1, paths: uPlot.paths.bars({ size: [0.7, 48] }), points: { show: false }, value: legendValue(fmtNumber) },
			{ label: t('overview.col_failed'), stroke: '#dc2626', fill: 'rgba(220,38,38,0.75)', width: 1, paths: uPlot.paths.bars({ size: [0.35, 24] }), points: { show: false }, value: legendValue(fmtNumber) },
		],
	};
	const u = new uPlot(opts, [xs, series.map((d) => d.total ?? 0), series.map((d) => d.failed ?? 0)], box);
	const ro = new ResizeObserver(() => u.setSize({ width: Math.max(box.clientWidth, 260), height: 220 }));
	ro.observe(box);
	const destroy = u.destroy.bind(u);
	u.destroy = () => { ro.disconnect(); destroy(); };
	return u;
}

function latencyBlock(lat) {
	if (!lat || typeof lat !== 'object') return missing();
	const row = (key, label) => {
		const l = lat[key];
		if (!l) return null;
		return h('tr', { id: `latency-${key}` },
			h('th', { scope: 'row' }, label),
			h('td', { class: 'num' }, l.count ? fmtSeconds(l.p50_seconds) : '—'),
			h('td', { class: 'num' }, l.count ? fmtSeconds(l.p95_seconds) : '—'),
			h('td', { class: 'num' }, fmtNumber(l.count ?? 0)));
	};
	return h('table', { class: 'compact' },
		h('thead', {}, h('tr', {}, h('th', { scope: 'col' }, ''), h('th', { scope: 'col', class: 'num' }, t('overview.p50')), h('th', { scope: 'col', class: 'num' }, t('overview.p95')), h('th', { scope: 'col', class: 'num' }, t('overview.col_count')))),
		h('tbody', {}, row('queue', t('overview.latency_queue')), row('delivery', t('overview.latency_delivery'))));
}

function costBlock(cost) {
	if (!cost || typeof cost !== 'object') return missing();
	const rows = [];
	for (const [ch, byCur] of Object.entries(cost)) {
		for (const [cur, amount] of Object.entries(byCur || {})) rows.push([ch, cur, amount]);
	}
	if (!rows.length) return h('p', { class: 'muted', id: 'cost-none' }, t('overview.no_cost'));
	return h('table', { class: 'compact' },
		h('tbody', {}, rows.map(([ch, cur, amount]) => h('tr', {},
			h('th', { scope: 'row' }, tOr(`channel.${ch}`, ch)),
			h('td', { class: 'num' }, fmtMoney(amount, cur))))));
}

function providerBlock(bp) {
	if (!bp || typeof bp !== 'object') return missing();
	const rows = Object.entries(bp);
	if (!rows.length) return h('p', { class: 'muted' }, t('overview.none'));
	return h('table', { class: 'compact' },
		h('thead', {}, h('tr', {}, h('th', { scope: 'col' }, t('overview.col_provider')), h('th', { scope: 'col', class: 'num' }, t('overview.col_count')), h('th', { scope: 'col', class: 'num' }, t('overview.success_rate')))),
		h('tbody', {}, rows.map(([name, p]) => h('tr', {},
			h('th', { scope: 'row' }, ltr(name, 'provider')),
			h('td', { class: 'num' }, fmtNumber(p.total ?? 0)),
			h('td', { class: 'num' }, p.final ? fmtPercent(p.success_rate) : '—')))));
}

function errorsBlock(list) {
	if (!Array.isArray(list)) return missing();
	if (!list.length) return h('p', { class: 'muted' }, t('overview.no_errors'));
	return h('table', { class: 'compact' },
		h('tbody', {}, list.map((e) => h('tr', {},
			h('th', { scope: 'row' }, h('code', {}, e.code)),
			h('td', { class: 'num' }, fmtNumber(e.count))))));
}

function channelHealth(name, ch) {
	ch = ch || {};
	return h('div', { class: 'health-card', id: `health-${name}` },
		h('div', { class: 'panel-head' }, h('h3', {}, tOr(`channel.${name}`, name)), badge('health', ch.status)),
		h('dl', { class: 'kv' },
			h('dt', {}, t('health.provider')), h('dd', {}, ch.provider ? ltr(ch.provider, 'provider') : '—'),
			ch.error_rate != null ? [h('dt', {}, t('health.error_rate')), h('dd', {}, fmtPercent(ch.error_rate))] : null,
			h('dt', {}, t('health.checked')), h('dd', {}, ch.checked_at ? fmtDateTime(ch.checked_at) : '—'),
			ch.fallback ? [h('dt', {}, t('health.fallback')), h('dd', {}, ch.fallback.provider ? ltr(ch.fallback.provider, 'provider') : '—', ' · ', badge('health', ch.fallback.status))] : null),
		healthNoteEl(ch));
}

function outboxBlock(ob) {
	const item = (key, label, v) => [h('dt', {}, label), h('dd', { id: `outbox-${key}` }, v)];
	return h('div', { class: 'outbox' },
		h('h3', {}, t('health.outbox')),
		h('dl', { class: 'kv inline' },
			item('depth', t('health.queued'), fmtNumber(ob.depth ?? 0)),
			item('due', t('health.due'), fmtNumber(ob.due ?? 0)),
			item('sending', t('health.sending'), fmtNumber(ob.sending ?? 0)),
			item('scheduled', t('health.scheduled'), fmtNumber(ob.scheduled ?? 0)),
			item('oldest', t('health.oldest'), ob.oldest_due_age_seconds ? fmtSeconds(ob.oldest_due_age_seconds) : '—')));
}

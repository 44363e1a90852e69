// The web console's charts (app.js draws a job's page with them): one Chart.js line
// chart per metric name, against the step, in the page's colours (light or dark).
'use strict';

// Charts, one per metric name, holding every point GetMetrics returns for it.
class MetricCharts {
  constructor(container) {
    this.container = container;
    this.charts = new Map();  // name -> {chart, points}
  }
  static order(name) {
    const first = ['loss', 'learning_rate', 'grad_norm'];
    return first.includes(name) ? `0${first.indexOf(name)}` : `1${name}`;
  }
  reset(points) {
    for (const { chart } of this.charts.values()) chart.destroy();
    this.charts.clear();
    this.container.replaceChildren();
    const byName = new Map();
    for (const p of points) {
      if (!byName.has(p.name)) byName.set(p.name, []);
      byName.get(p.name).push({ x: Number(p.step), y: p.value });
    }
    for (const name of [...byName.keys()].sort((a, b) => MetricCharts.order(a).localeCompare(MetricCharts.order(b)))) {
      this.chartFor(name, byName.get(name));
    }
    this.count();
  }
  add(point) {
    const entry = this.charts.get(point.name);
    if (!entry) {
      this.chartFor(point.name, [{ x: Number(point.step), y: point.value }]);
    } else {
      entry.points.push({ x: Number(point.step), y: point.value });
      entry.dirty = true;
    }
    this.count();
  }
  flush() {
    for (const entry of this.charts.values()) {
      if (entry.dirty) { entry.dirty = false; entry.chart.update('none'); }
    }
  }
  count() {
    let total = 0;
    for (const { points } of this.charts.values()) total += points.length;
    this.container.dataset.points = String(total);
  }
  // The page's colours (app.css, light or dark) as the charts draw them.
  static colours() {
    const style = getComputedStyle(document.documentElement);
    const get = (name) => style.getPropertyValue(name).trim();
    return { text: get('--muted'), grid: get('--line'), line: get('--accent') };
  }
  static paint(chart, c) {
    chart.data.datasets[0].borderColor = c.line;
    const { x, y } = chart.options.scales;
    x.title.color = x.ticks.color = y.ticks.color = c.text;
    x.grid.color = y.grid.color = c.grid;
  }
  // The system went light or dark: the charts follow.
  recolour() {
    const c = MetricCharts.colours();
    for (const { chart } of this.charts.values()) { MetricCharts.paint(chart, c); chart.update('none'); }
  }
  chartFor(name, points) {
    const canvas = el('canvas', { role: 'img', 'aria-label': `${name} against step` });
    const box = el('figure', { class: 'chart', 'data-metric': name },
      el('h3', { text: name }), el('div', { class: 'canvas' }, canvas));
    this.container.append(box);
    const chart = new Chart(canvas, {
      type: 'line',
      data: { datasets: [{ label: name, data: points, borderWidth: 1.5, pointRadius: 0, tension: 0 }] },
      options: {
        animation: false, parsing: false, normalized: true, responsive: true, maintainAspectRatio: false,
        scales: { x: { type: 'linear', title: { display: true, text: 'step' }, ticks: {}, grid: {} },
                  y: { ticks: {}, grid: {} } },
        plugins: { legend: { display: false }, decimation: { enabled: true, algorithm: 'lttb', samples: 800 } },
      },
    });
    MetricCharts.paint(chart, MetricCharts.colours());
    chart.update('none');
    box.dataset.points = String(points.length);
    this.charts.set(name, { chart, points, dirty: false });
  }
  destroy() { for (const { chart } of this.charts.values()) chart.destroy(); }
}

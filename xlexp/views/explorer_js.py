"""The script of the report's cross-experiment explorer (``EXPLORER_JS``): it reads the JSON that
``xlexp.views.explorer.explorer_section`` embeds in the page and, on every change of a selector, draws
A's matrix (or B − A with significance marks) and A's dev curves with the plotly.js the page already
carries, groups the languages, lists A's log folders, and keeps the metric, rule and K choices to
what A recorded.

Why a module of its own: it is browser code (JavaScript, kept as one Python string so that the page
stays one file and the package needs no data file), read by no Python code but the page assembly in
``xlexp.views.html``, which inlines it once after the page's body; the Python side of the explorer
(which data it embeds, the significance of each cell, the selectors' markup) is ``xlexp.views.explorer``.
"""

EXPLORER_JS = r"""
(function () {
  var node = document.getElementById('xlexp-data');
  if (!node) return;
  var D = JSON.parse(node.textContent);
  var $ = function (id) { return document.getElementById(id); };
  var CONFIG = {displaylogo: false, responsive: true};
  // one colour range per metric over every experiment, rule and K (the same value, the same colour)
  var metricRange = {};
  D.cells.forEach(function (c) {
    if (c[6] === null) return;
    var r = metricRange[c[1]] = metricRange[c[1]] || [c[6], c[6]];
    r[0] = Math.min(r[0], c[6]); r[1] = Math.max(r[1], c[6]);
  });
  function widen(lo, hi) {
    if (hi - lo < 0.05) { var mid = (hi + lo) / 2; return [mid - 0.025, mid + 0.025]; }
    return [lo, hi];
  }
  // more distinct curve colours than plotly's 10 (16 targets repeated them): Dark24, then hues
  var PALETTE = ['#2E91E5', '#E15F99', '#1CA71C', '#FB0D0D', '#DA16FF', '#222A2A', '#B68100', '#750D86', '#EB663B',
    '#511CFB', '#00A08B', '#FB00D1', '#FC0080', '#B2828D', '#6C7C32', '#778AAE', '#862A16', '#A777F1', '#620042',
    '#1616A7', '#DA60CA', '#6C4516', '#0D2A63', '#AF0038'];
  function colour(i, n) { return n <= PALETTE.length ? PALETTE[i] : 'hsl(' + Math.round(360 * i / n) + ',70%,40%)'; }
  var byKey = {};
  D.cells.forEach(function (c) {
    var key = [c[0], c[1], c[2], c[3]].join('\t');
    (byKey[key] = byKey[key] || []).push(c);
  });
  function lang(code) { return D.languages[code] || {name: code, family: '', script: ''}; }
  function label(code) {
    if (code.indexOf('+') >= 0) return code;
    var n = lang(code).name;
    return n && n !== code ? n + ' (' + code + ')' : code;
  }
  function groupOf(code, by) {
    if (by === 'none') return '';
    var i = lang(code.split('+')[0]);
    return (by === 'family' ? i.family : i.script) || '(unknown)';
  }
  function order(codes, by) {
    return codes.slice().sort(function (a, b) {
      var ga = groupOf(a, by), gb = groupOf(b, by);
      if (ga !== gb) {
        if (ga === '(unknown)') return 1;
        if (gb === '(unknown)') return -1;
        return ga < gb ? -1 : 1;
      }
      return a < b ? -1 : a > b ? 1 : 0;
    });
  }
  function inLanguage(s, t) { return s.split('+').indexOf(t) >= 0; }
  function cellsOf(exp) { return D.cells.filter(function (c) { return c[0] === exp; }); }
  function setOptions(sel, values, labels, preferred) {
    var keep = sel.value;
    sel.innerHTML = '';
    values.forEach(function (v, i) {
      var o = document.createElement('option');
      o.value = String(v); o.textContent = labels ? labels[i] : String(v);
      sel.appendChild(o);
    });
    var want = values.map(String).indexOf(keep) >= 0 ? keep : (preferred !== undefined && values.map(String).indexOf(String(preferred)) >= 0 ? String(preferred) : String(values[0]));
    sel.value = want;
  }
  function uniq(list) { return list.filter(function (v, i) { return list.indexOf(v) === i; }); }
  function refreshChoices() {
    var mine = cellsOf($('ex-a').value);
    var metrics = uniq(mine.map(function (c) { return c[1]; })).sort();
    setOptions($('ex-metric'), metrics, null, D.defaultMetric);
    var rules = uniq(mine.filter(function (c) { return c[1] === $('ex-metric').value; }).map(function (c) { return c[2]; }));
    rules.sort(function (a, b) {
      var ia = D.ruleOrder.indexOf(a), ib = D.ruleOrder.indexOf(b);
      return (ia < 0 ? 99 : ia) - (ib < 0 ? 99 : ib) || (a < b ? -1 : 1);
    });
    setOptions($('ex-rule'), rules, null, rules[0]);
    var ks = uniq(mine.filter(function (c) { return c[1] === $('ex-metric').value && c[2] === $('ex-rule').value; })
      .map(function (c) { return c[3]; })).sort(function (a, b) { return a - b; });
    setOptions($('ex-k'), ks, ks.map(function (k) { return k < 0 ? 'none (no shots)' : 'K=' + k; }), ks[0]);
  }
  function matrix(exp, metric, rule, k) {
    var m = {};
    (byKey[[exp, metric, rule, k].join('\t')] || []).forEach(function (c) {
      (m[c[4]] = m[c[4]] || {})[c[5]] = {mean: c[6], std: c[7], n: c[8]};
    });
    return m;
  }
  function keys(m) { return Object.keys(m); }
  function targetsOf(m) { var t = []; keys(m).forEach(function (s) { t = t.concat(keys(m[s])); }); return uniq(t); }
  function significance(a, b, metric, rule, k, s, t) {
    var flip = a > b, key = [flip ? b : a, flip ? a : b, metric, rule, k].join('\t');
    var tests = D.significance[key];
    return tests ? tests[s + '\t' + t] : undefined;
  }
  function mark(p) { return p === null || p === undefined ? '' : p < D.alpha / 5 ? '**' : p < D.alpha ? '*' : ''; }
  function fmt(v, d) { return v === null || v === undefined ? '' : v.toFixed(d); }
  var state = {};
  window.xlexpExplorer = state;
  function draw() {
    var a = $('ex-a').value, b = $('ex-b').value, metric = $('ex-metric').value, rule = $('ex-rule').value;
    var k = $('ex-k').value, by = $('ex-group').value;
    var A = matrix(a, metric, rule, k), B = b ? matrix(b, metric, rule, k) : null;
    function both(x, y) { return x.filter(function (v) { return y.indexOf(v) >= 0; }); }
    var sources = order(B ? both(keys(A), keys(B)) : keys(A), by);  // B − A: the cells both sides have
    var targets = order(B ? both(targetsOf(A), targetsOf(B)) : targetsOf(A), by);
    var z = [], text = [], hover = [], cross = [], tested = 0, untested = 0, signif = 0;
    sources.forEach(function (s) {
      var zr = [], tr = [], hr = [];
      targets.forEach(function (t) {
        var ca = (A[s] || {})[t], cb = B ? (B[s] || {})[t] : null, v = null, txt = '', hov = 'no result';
        var where = 'source: ' + label(s) + ' · ' + groupOf(s, 'family') + '<br>target: ' + label(t) + ' · ' +
          lang(t).script + ' · ' + lang(t).family + '<br>';
        if (!B && ca) {
          v = ca.mean; txt = fmt(v, 2);
          hov = where + metric + ': ' + fmt(v, 3) + (ca.n > 1 ? ' ± ' + fmt(ca.std, 3) : '') + ' (n=' + ca.n + ')';
        } else if (B && ca && cb) {
          v = cb.mean - ca.mean;
          var sig = significance(a, b, metric, rule, k, s, t), p = sig ? sig[0] : null;
          if (p === null || p === undefined) untested += 1; else tested += 1;
          if (mark(p)) signif += 1;
          txt = (v >= 0 ? '+' : '') + fmt(v, 3) + mark(p);
          hov = where + 'B − A: ' + (v >= 0 ? '+' : '') + fmt(v, 3) + ' (A ' + fmt(ca.mean, 3) + ', B ' + fmt(cb.mean, 3) +
            ')<br>' + (p === null || p === undefined ? 'no test (one seed per side)' : 'p = ' + fmt(p, 3) + ' (seeds ' + sig[2] + ' + ' + sig[3] + ')');
        }
        if (v !== null && !inLanguage(s, t)) cross.push(v);
        zr.push(v); tr.push(txt); hr.push(hov);
      });
      z.push(zr); text.push(tr); hover.push(hr);
    });
    var mean = cross.length ? cross.reduce(function (x, y) { return x + y; }, 0) / cross.length : null;
    var values = [].concat.apply([], z).filter(function (v) { return v !== null; });
    var scale = $('ex-scale').value;
    var lo = Math.min.apply(null, values), hi = Math.max.apply(null, values);
    if (!values.length) { lo = 0; hi = 1; }
    if (scale === 'metric' && metricRange[metric]) { lo = metricRange[metric][0]; hi = metricRange[metric][1]; }
    var range = widen(lo, hi); lo = range[0]; hi = range[1];
    var trace = {type: 'heatmap', x: targets, y: sources, z: z, text: text, customdata: hover,
      texttemplate: sources.length * targets.length <= 400 ? '%{text}' : '', hovertemplate: '%{customdata}<extra></extra>',
      xgap: 1, ygap: 1, colorbar: {title: {text: B ? 'Δ ' + metric : metric + (scale === 'metric' ? ' (scale: all heatmaps)' : '')}}};
    if (B) {
      var vmax = Math.max(0.01, Math.max.apply(null, values.map(Math.abs).concat([0])));
      trace.colorscale = 'RdBu'; trace.zmin = -vmax; trace.zmax = vmax; trace.zmid = 0;
    } else {
      trace.colorscale = 'Viridis'; trace.zmin = lo; trace.zmax = hi;
    }
    var shapes = [];
    sources.forEach(function (s, i) {
      targets.forEach(function (t, j) {
        if (inLanguage(s, t)) shapes.push({type: 'rect', x0: j - 0.5, x1: j + 0.5, y0: i - 0.5, y1: i + 0.5,
          line: {color: 'black', width: 2}});
      });
    });
    var groups = [];
    targets.forEach(function (t, j) {  // a rule between language groups, and the groups listed below
      var g = groupOf(t, by);
      if (by !== 'none' && j > 0 && g !== groupOf(targets[j - 1], by)) shapes.push({type: 'line', x0: j - 0.5, x1: j - 0.5,
        y0: -0.5, y1: sources.length - 0.5, line: {color: 'white', width: 4}});
      if (!groups.length || groups[groups.length - 1][0] !== g) groups.push([g, []]);
      groups[groups.length - 1][1].push(t);
    });
    var title = (B ? b + ' − ' + a : a) + ': ' + metric + ' (test, ' + rule + (k < 0 ? '' : ', K=' + k) + ')' +
      (mean === null ? '' : ' — mean without in-language cells ' + (B && mean >= 0 ? '+' : '') + fmt(mean, 3));
    var narrow = targets.length <= 12;
    var layout = {title: {text: title, font: {size: 14}}, height: Math.min(3200, Math.max(320, 220 + 34 * sources.length)),
      margin: {l: 170, r: 20, t: 60, b: 120}, shapes: shapes,
      xaxis: {type: 'category', title: {text: 'target (test language)'}, tickmode: 'array', tickvals: targets,
              ticktext: targets.map(label), tickangle: -40, automargin: true},
      yaxis: {type: 'category', title: {text: 'source (training language)'}, autorange: 'reversed', tickmode: 'array',
              tickvals: sources, ticktext: sources.map(label), automargin: true}};
    // a small matrix at its own width at most; it shrinks with the window (1280 px) instead of overflowing it
    $('explore-heatmap').parentNode.style.maxWidth = narrow ? 'min(' + Math.max(560, 360 + 95 * targets.length) + 'px, 100%)' : '';
    layout.autosize = true;
    Plotly.react('explore-heatmap', [trace], layout, CONFIG);
    var info = B ? 'B − A = ' + b + ' − ' + a + ': ' + signif + ' of ' + (tested + untested) + ' cell(s) significant' +
      (untested ? '; ' + untested + ' cell(s) not tested (one seed per side)' : '') :
      a + ': ' + sources.length + ' source(s) × ' + targets.length + ' target(s)';
    $('ex-info').textContent = info + (mean === null ? '' : ' · mean without in-language cells: ' + fmt(mean, 3));
    $('ex-groups').textContent = by === 'none' ? '' : 'groups (' + by + '): ' + groups.map(function (g) {
      return g[0] + ': ' + g[1].join(', '); }).join(' | ');
    drawCurves(a, metric, by);
    var meta = D.experiments[a] || {}, logs = meta.log_dirs || [];
    var box = $('ex-logs'); box.innerHTML = '';
    box.appendChild(document.createTextNode(logs.length ? 'log folder(s) of ' + a + ': ' : 'no log folder recorded for ' + a +
      ' (records written outside a Hydra run)'));
    logs.forEach(function (d, i) {
      var link = document.createElement('a'); link.href = 'file://' + encodeURI(d); link.textContent = d;
      link.className = 'logdir';
      if (i) box.appendChild(document.createTextNode(' · '));
      box.appendChild(link);
    });
    state.zmin = trace.zmin; state.zmax = trace.zmax;
    state.a = a; state.b = b; state.metric = metric; state.rule = rule; state.k = Number(k); state.group = by;
    state.sources = sources; state.targets = targets; state.z = z; state.text = text; state.mean = mean;
    state.significant = signif; state.tested = tested; state.untested = untested;
  }
  function drawCurves(exp, metric, by) {
    var rows = D.curves.filter(function (c) { return c[0] === exp && c[1] === metric; });
    var series = {};
    rows.forEach(function (c) { var key = c[2] + '\t' + c[3]; (series[key] = series[key] || []).push(c); });
    var names = order(uniq(rows.map(function (c) { return c[3]; })), by);
    var traces = [], targetNames = uniq(rows.map(function (c) { return c[3]; }));
    Object.keys(series).sort(function (x, y) {
      var tx = x.split('\t'), ty = y.split('\t');
      return tx[0] < ty[0] ? -1 : tx[0] > ty[0] ? 1 : names.indexOf(tx[1]) - names.indexOf(ty[1]);
    }).forEach(function (key) {
      var pts = series[key].sort(function (p, q) { return p[4] - q[4]; }), st = key.split('\t');
      traces.push({type: 'scatter', mode: 'lines+markers', name: st[0] + ' → ' + label(st[1]) + (inLanguage(st[0], st[1]) ? ' (in-language)' : ''),
        x: pts.map(function (p) { return p[4]; }), y: pts.map(function (p) { return p[5]; }),
        line: {dash: inLanguage(st[0], st[1]) ? 'solid' : 'dot',
               color: colour(order(targetNames, by).indexOf(st[1]), targetNames.length)},
        marker: {color: colour(order(targetNames, by).indexOf(st[1]), targetNames.length)},
        hovertemplate: st[0] + ' → ' + label(st[1]) + '<br>step %{x}: %{y:.3f} (n=%{customdata})<extra></extra>',
        customdata: pts.map(function (p) { return p[6]; })});
    });
    var layout = {title: {text: traces.length ? exp + ': dev ' + metric + ' during training (mean over seeds)' :
      exp + ': no dev curves recorded (' + metric + ')', font: {size: 14}}, height: traces.length ? 380 : 90,
      xaxis: {title: {text: 'training step'}, visible: traces.length > 0},
      yaxis: {title: {text: 'dev ' + metric}, visible: traces.length > 0}, autosize: true,
      margin: {l: 60, r: 20, t: 50, b: 50}};
    Plotly.react('explore-curves', traces, layout, CONFIG);
    state.curves = traces.length;
  }
  $('ex-a').addEventListener('change', function () { refreshChoices(); draw(); });
  $('ex-metric').addEventListener('change', function () { refreshChoices(); draw(); });
  $('ex-rule').addEventListener('change', function () { refreshChoices(); draw(); });
  ['ex-b', 'ex-k', 'ex-group', 'ex-scale'].forEach(function (id) { $(id).addEventListener('change', draw); });
  refreshChoices();
  draw();
})();
"""

// The live console of a running run: lines from /run/UUID/events (Server-Sent Events) are added
// to the console table as they are printed, and the end replaces the result without a reload.
// Lines are put in with textContent, never as HTML. Without JavaScript the page still shows
// what was printed when it was loaded.
'use strict';
(function () {
  var table = document.getElementById('console');
  if (!table || table.dataset.live !== '1') return;
  var body = table.tBodies[0];
  var count = document.getElementById('line-count');
  var state = document.getElementById('live-state');
  var source = new EventSource('/run/' + encodeURIComponent(table.dataset.uuid) + '/events?after=' + encodeURIComponent(table.dataset.after));
  var pad = function (n, w) { n = String(n); while (n.length < w) n = '0' + n; return n; };
  var offset = function (ms) { var s = Math.floor(ms / 1000); return '+' + Math.floor(s / 60) + ':' + pad(s % 60, 2) + '.' + pad(ms % 1000, 3); };
  var cell = function (row, cls, text) { var td = row.insertCell(-1); td.className = cls; td.textContent = text; };
  var follow = function () { return window.innerHeight + window.scrollY >= document.body.scrollHeight - 40; };
  source.addEventListener('line', function (ev) {
    var line = JSON.parse(ev.data);
    var stick = follow();
    var row = body.insertRow(-1);
    cell(row, 'n', line.n);
    cell(row, 't', offset(line.ms));
    cell(row, 'l', line.text);
    if (count && Number(count.textContent) < line.n) count.textContent = String(line.n);
    if (stick) window.scrollTo(0, document.body.scrollHeight);
  });
  source.addEventListener('skipped', function (ev) {
    var row = body.insertRow(-1);
    cell(row, 'n', '');
    cell(row, 't', '');
    cell(row, 'l', '[' + JSON.parse(ev.data).count + ' lines not shown: this page fell behind, or they never reached the server; reload to see every stored line]');
  });
  source.addEventListener('end', function (ev) {
    var end = JSON.parse(ev.data);
    source.close();
    var result = document.getElementById('result');
    if (result) {
      var span = document.createElement('span');
      span.className = 'result ' + (end.result.ok ? 'ok' : 'fail');
      span.textContent = end.result.text;
      result.replaceChildren(span);
    }
    var finished = document.getElementById('finished');
    if (finished && end.finished) finished.textContent = end.finished.replace('T', ' ').replace(/\.\d+Z$/, 'Z');
    var duration = document.getElementById('duration');
    if (duration && end.durationMs !== null) duration.textContent = (end.durationMs / 1000).toFixed(1) + ' s';
    if (state) { state.textContent = 'finished'; state.className = ''; }
    document.body.dataset.ended = '1';
  });
})();

const A = window.ATLAS; const layers = Object.keys(A.layers);
const grid = document.getElementById('grid'), panel = document.getElementById('panel');
const nav = document.getElementById('layers'), count = document.getElementById('count');
let current = layers[0];
function esc(s){return String(s).replace(/[&<>"']/g,c=>({'&':'&amp;','<':'&lt;','>':'&gt;','"':'&quot;',"'":'&#39;'}[c]));}
function show(layer){
  current = layer; grid.innerHTML = '';
  [...nav.children].forEach(b => b.classList.toggle('active', b.dataset.layer === layer));
  const units = A.layers[layer].units; const ids = Object.keys(units).map(Number).sort((a,b)=>a-b);
  const kind = A.layers[layer].kind === 'concepts' ? 'concepts' : 'units';
  count.textContent = ids.length + ' ' + kind + (A.layers[layer].r2 !== undefined ? ', held-out R² ' +
    A.layers[layer].r2.toFixed(3) : '');
  count.dataset.count = ids.length;
  for (const u of ids){
    const d = document.createElement('div'); d.className = 'unit'; d.id = 'unit-' + u; d.dataset.unit = u;
    d.innerHTML = '<img loading="eager" src="' + esc(units[u].image) + '" alt="unit ' + u + '"><span>' + u + '</span>';
    d.onclick = () => open(u); grid.appendChild(d);
  }
  if (ids.length) open(ids[0]);
}
function open(u){
  const e = A.layers[current].units[u]; if (!e) return;
  const concept = A.layers[current].kind === 'concepts';
  let ex = '';
  for (const x of e.examples){
    ex += '<figure><img src="' + esc(x.image) + '" alt="example"><figcaption class="muted">' + x.activation.toFixed(2) +
      '</figcaption>' + (x.attribution ? '<img src="' + esc(x.attribution) + '" alt="attribution">' : '') + '</figure>';
  }
  const what = concept ? 'importance ' + (100 * e.objective).toFixed(1) + '%' : 'objective ' + e.objective.toFixed(3);
  const cls = (e.classes || []).map(c => '<li>class ' + c[0] + ': ' + c[1].toPrecision(3) + '</li>').join('');
  panel.innerHTML = '<h2 id="panel-title">' + esc(current) + ' : ' + (concept ? 'concept ' : 'unit ') + u +
    (e.name && !concept ? ' (' + esc(e.name) + ')' : '') + '</h2><img class="big" src="' +
    esc(e.image) + '" alt="unit ' + u + '"><p class="muted">' + what + ', seed ' + e.seed +
    '</p>' + (ex ? '<h3>dataset examples</h3><div class="examples">' + ex + '</div>' : '') +
    (cls ? '<h3>classes that use it</h3><ul id="classes">' + cls + '</ul>' : '');
  document.querySelectorAll('.unit.hit').forEach(n => n.classList.remove('hit'));
  const cell = document.getElementById('unit-' + u); if (cell) cell.classList.add('hit');
}
for (const l of layers){
  const b = document.createElement('button'); b.textContent = l || '(output)'; b.dataset.layer = l;
  b.onclick = () => show(l); nav.appendChild(b);
}
document.getElementById('search').addEventListener('input', ev => {
  const u = parseInt(ev.target.value, 10); if (isNaN(u)) return;
  if (!(u in A.layers[current].units)){ const other = layers.find(l => u in A.layers[l].units); if (other) show(other); }
  if (u in A.layers[current].units){ open(u); document.getElementById('unit-' + u).scrollIntoView({block:'center'}); }
});
show(current);

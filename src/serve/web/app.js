// The page of `instructmol serve`: pick a task/adapter, enter a molecule (checked by the server
// as you type, drawn by RDKit.js), ask a question, read the streamed answer (and p(Yes) for
// yes/no tasks). Plain JS, no build step; talks only to the server that served it.
'use strict';

(() => {
  const $ = (id) => document.getElementById(id);
  const KEY_STORAGE = 'instructmol.apiKey';
  const MODEL_STORAGE = 'instructmol.model';
  const CHECK_DELAY_MS = 250;

  // Questions per task, in the wording the runs were trained on (src/data/prompts.rs) first.
  const PRESETS = {
    chebi20: [
      'Describe this molecule.',
      'Could you give me a brief overview of this molecule?',
      'What can you tell me about this molecule?',
    ],
    bbbp: [
      'Evaluate whether the given molecule is able to enter the blood-brain barrier.',
      'Is this molecule BBB-permeable?',
    ],
    bace: ['Evaluate whether the given molecule is able to inhibit human beta-secretase 1 (BACE-1).'],
    hiv: ['Evaluate whether the given molecule is able to inhibit HIV replication.'],
    qm9: [
      'Could you give me the HOMO energy value of this molecule?',
      'Could you give me the LUMO energy value of this molecule?',
      'Could you give me the HOMO-LUMO gap energy value of this molecule?',
    ],
    retrosynthesis: ['Please suggest potential reactants used in the synthesis of the provided product.'],
    forward: ['Based on the given reactants and reagents, suggest a possible product.'],
    reagent: ['Please provide possible reagents based on the following chemical reaction.'],
  };
  const DEFAULT_PRESETS = ['Describe this molecule.', 'What can you tell me about this molecule?'];

  // Short names for the model menu; TASK_LABELS below the menu.
  const TASK_SHORT = {
    chebi20: 'ChEBI-20 description',
    bbbp: 'BBBP yes/no',
    bace: 'BACE yes/no',
    hiv: 'HIV yes/no',
    qm9: 'QM9 properties',
    retrosynthesis: 'retrosynthesis',
    forward: 'forward reaction',
    reagent: 'reagents',
  };

  const TASK_LABELS = {
    chebi20: 'molecule description (ChEBI-20)',
    bbbp: 'blood-brain barrier penetration (BBBP)',
    bace: 'BACE-1 inhibition (BACE)',
    hiv: 'HIV replication inhibition (HIV)',
    qm9: 'quantum properties (QM9: HOMO, LUMO, gap; hartree)',
    retrosynthesis: 'retrosynthesis',
    forward: 'forward reaction prediction',
    reagent: 'reagent prediction',
  };

  const EXAMPLES = [
    ['caffeine', 'CN1C=NC2=C1C(=O)N(C(=O)N2C)C'],
    ['aspirin', 'CC(=O)OC1=CC=CC=C1C(=O)O'],
    ['ibuprofen', 'CC(C)CC1=CC=C(C=C1)C(C)C(=O)O'],
    ['dopamine', 'C1=CC(=C(C=C1CCN)O)O'],
    ['penicillin G', 'CC1([C@@H](N2[C@H](S1)[C@@H](C2=O)NC(=O)CC3=CC=CC=C3)C(=O)O)C'],
  ];

  const state = {
    models: [],
    model: null, // entry of /v1/models
    molecule: null, // {notation, text, canonical, selfies, atoms} once the server accepted it
    checkSeq: 0,
    checkTimer: null,
    rdkit: null,
    rdkitError: null,
    abort: null, // AbortController of the running answer
    lastPreset: null, // the question box holds this preset, unedited
    current: null, // the answer on show
    history: [], // earlier answers
  };

  // ---------------------------------------------------------------- HTTP

  class ApiError extends Error {
    constructor(status, message, type, code) {
      super(message);
      this.name = 'ApiError';
      this.status = status;
      this.type = type || null;
      this.code = code || null;
    }
  }

  function apiKey() {
    try {
      return localStorage.getItem(KEY_STORAGE) || '';
    } catch (_) {
      return '';
    }
  }

  function headers(json) {
    const h = { Accept: json === 'sse' ? 'text/event-stream' : 'application/json' };
    if (json) h['Content-Type'] = 'application/json';
    const key = apiKey();
    if (key) h.Authorization = 'Bearer ' + key;
    return h;
  }

  // An OpenAI error body ({"error":{"message","type","param","code"}}) or whatever came back.
  async function readError(resp) {
    const text = await resp.text().catch(() => '');
    let message = text.trim() || resp.statusText || 'no message';
    let type = null;
    let code = null;
    try {
      const body = JSON.parse(text);
      if (body && body.error) {
        if (typeof body.error === 'string') {
          message = body.error;
        } else {
          message = body.error.message || message;
          type = body.error.type || null;
          code = body.error.code || null;
        }
      }
    } catch (_) {
      if (message.length > 300) message = message.slice(0, 300) + '…';
    }
    return new ApiError(resp.status, message, type, code);
  }

  async function api(path, body, signal) {
    let resp;
    try {
      resp = await fetch(path, {
        method: body === undefined ? 'GET' : 'POST',
        headers: headers(body !== undefined),
        body: body === undefined ? undefined : JSON.stringify(body),
        signal,
      });
    } catch (e) {
      if (e.name === 'AbortError') throw e;
      throw new ApiError(0, 'cannot reach the server (' + e.message + ')', 'network_error');
    }
    if (!resp.ok) throw await readError(resp);
    return resp.json();
  }

  // ---------------------------------------------------------------- errors

  function describeError(e) {
    if (e instanceof ApiError) {
      const what = e.status ? 'Server error ' + e.status : 'Network error';
      const kind = [e.type, e.code].filter(Boolean).join(', ');
      let hint = '';
      if (e.status === 401) hint = ' Enter the server\u2019s API key (top right).';
      if (e.status === 429) hint = ' The server is busy; try again in a moment.';
      return { title: what + (kind ? ' (' + kind + ')' : ''), message: e.message + hint };
    }
    return { title: 'Error', message: e && e.message ? e.message : String(e) };
  }

  function showError(e) {
    const d = describeError(e);
    $('error-title').textContent = d.title + ':';
    $('error-message').textContent = d.message;
    $('error').hidden = false;
  }

  function clearError() {
    $('error').hidden = true;
  }

  // ---------------------------------------------------------------- server and models

  function setServer(stateName, text) {
    const pill = $('server-status');
    pill.dataset.state = stateName;
    pill.textContent = text;
  }

  async function loadModels() {
    const select = $('model');
    select.disabled = true;
    setServer('unknown', 'connecting…');
    try {
      await api('/health');
    } catch (e) {
      setServer('down', 'server unreachable');
      select.innerHTML = '<option>no server</option>';
      showError(e);
      updateAsk();
      return;
    }
    let list;
    try {
      list = await api('/v1/models');
    } catch (e) {
      if (e instanceof ApiError && e.status === 401) {
        setServer('locked', 'needs API key');
        $('api-key').focus();
      } else {
        setServer('down', 'models unavailable');
      }
      select.innerHTML = '<option>no models</option>';
      state.models = [];
      state.model = null;
      showError(e);
      updateAsk();
      return;
    }
    state.models = Array.isArray(list.data) ? list.data : [];
    select.textContent = '';
    for (const m of state.models) {
      const opt = document.createElement('option');
      opt.value = m.id;
      opt.textContent = m.task ? m.id + ' \u00b7 ' + (TASK_SHORT[m.task] || m.task) : m.id;
      select.appendChild(opt);
    }
    if (!state.models.length) {
      select.innerHTML = '<option>no models loaded</option>';
      setServer('down', 'no models');
      state.model = null;
      updateAsk();
      return;
    }
    const wanted = new URLSearchParams(location.search).get('model') || storageGet(MODEL_STORAGE);
    const pick = state.models.find((m) => m.id === wanted) || state.models[0];
    select.value = pick.id;
    select.disabled = false;
    setServer('ok', 'server ok \u00b7 ' + state.models.length + (state.models.length === 1 ? ' model' : ' models'));
    clearError();
    selectModel(pick.id);
  }

  function storageGet(k) {
    try {
      return localStorage.getItem(k);
    } catch (_) {
      return null;
    }
  }

  function storageSet(k, v) {
    try {
      if (v) localStorage.setItem(k, v);
      else localStorage.removeItem(k);
    } catch (_) {
      /* private mode: not remembered */
    }
  }

  function selectModel(id) {
    state.model = state.models.find((m) => m.id === id) || null;
    storageSet(MODEL_STORAGE, state.model ? state.model.id : '');
    const info = $('model-info');
    if (!state.model) {
      info.textContent = '';
    } else {
      const m = state.model;
      const parts = [];
      parts.push(m.task ? 'task: ' + (TASK_LABELS[m.task] || m.task) : 'no task (general)');
      if (m.base) parts.push('base: ' + shortBase(m.base));
      if (m.yes_no) parts.push('yes/no answers with p(Yes)');
      info.textContent = parts.join(' \u00b7 ');
      info.title = m.base ? 'base model: ' + m.base : '';
    }
    renderPresets();
    updateAsk();
  }

  // "/path/to/SmolLM2-135M-Instruct.Q4_1.gguf (GGUF, ...) [...]" -> "SmolLM2-135M-Instruct.Q4_1.gguf"
  function shortBase(base) {
    const head = String(base).split(' (')[0].split(' [')[0].replace(/[\\/]+$/, '');
    const name = head.split(/[\\/]/).pop();
    return name || String(base);
  }

  function presetsFor(model) {
    return (model && PRESETS[model.task]) || DEFAULT_PRESETS;
  }

  function renderPresets() {
    const box = $('presets');
    box.textContent = '';
    const presets = presetsFor(state.model);
    for (const q of presets) {
      const b = document.createElement('button');
      b.type = 'button';
      b.className = 'chip';
      b.textContent = q;
      b.title = 'use this question';
      b.addEventListener('click', () => {
        setQuestion(q);
        $('question').focus();
      });
      box.appendChild(b);
    }
    // An untouched preset (or an empty box) follows the task; a question the user wrote stays.
    const current = $('question').value.trim();
    if (!current || current === state.lastPreset || isAnyPreset(current)) setQuestion(presets[0]);
  }

  function isAnyPreset(q) {
    if (DEFAULT_PRESETS.includes(q)) return true;
    return Object.values(PRESETS).some((list) => list.includes(q));
  }

  function setQuestion(q) {
    $('question').value = q;
    state.lastPreset = q;
  }

  // ---------------------------------------------------------------- molecule

  function notation() {
    return $('notation').value === 'selfies' ? 'selfies' : 'smiles';
  }

  function setMolStatus(stateName, text) {
    const el = $('mol-status');
    el.dataset.state = stateName;
    el.textContent = text;
  }

  function scheduleCheck() {
    clearTimeout(state.checkTimer);
    state.checkSeq++; // an answer to an older text is stale from now on
    state.molecule = null;
    updateAsk();
    const text = $('smiles').value.trim();
    hideCaret();
    if (!text) {
      setMolStatus('empty', 'Type or paste a molecule.');
      clearDrawing();
      $('mol-props').hidden = true;
      return;
    }
    setMolStatus('checking', 'checking\u2026');
    state.checkTimer = setTimeout(() => checkMolecule(text, notation()), CHECK_DELAY_MS);
  }

  async function checkMolecule(text, kind) {
    const seq = ++state.checkSeq;
    let res;
    try {
      res = await api('/v1/molecules', { [kind]: text });
    } catch (e) {
      if (seq !== state.checkSeq) return;
      const d = describeError(e);
      setMolStatus('error', 'Could not check the molecule: ' + d.title + ': ' + d.message);
      return;
    }
    if (seq !== state.checkSeq) return; // the text changed meanwhile
    const label = kind === 'selfies' ? 'SELFIES' : 'SMILES';
    if (res.valid) {
      state.molecule = {
        notation: kind,
        text,
        canonical: res.canonical_smiles || '',
        selfies: res.selfies || '',
        atoms: res.atoms,
      };
      setMolStatus('valid', 'Valid ' + label + (typeof res.atoms === 'number' ? ' \u00b7 ' + res.atoms + (res.atoms === 1 ? ' atom' : ' atoms') : ''));
      $('prop-canonical').textContent = state.molecule.canonical;
      $('prop-selfies').textContent = state.molecule.selfies;
      $('prop-atoms').textContent = typeof res.atoms === 'number' ? String(res.atoms) : '';
      $('mol-props').hidden = false;
      draw();
    } else {
      state.molecule = null;
      const err = res.error || {};
      const pos = Number.isInteger(err.position) ? err.position : null;
      // The server's messages may name the 0-based position themselves; the caret below is
      // the pointer either way, and a message without a number gets the 1-based character.
      const message = err.message || 'not a molecule';
      let where = '';
      if (pos !== null && !/\d/.test(message)) {
        where = pos >= text.length ? ' (at the end of the input)' : ' (at character ' + (pos + 1) + ')';
      }
      setMolStatus('invalid', 'Invalid ' + label + ': ' + message + where);
      if (pos !== null) showCaret(text, pos);
      $('mol-props').hidden = true;
      clearDrawing('invalid');
    }
    updateAsk();
  }

  // The input again, in monospace, with the offending character marked and a caret under it.
  function showCaret(text, pos) {
    const pre = $('mol-caret');
    pre.textContent = '';
    const p = Math.min(Math.max(pos, 0), text.length);
    const line = document.createElement('span');
    line.className = 'caret-line';
    line.appendChild(document.createTextNode(text.slice(0, p)));
    const mark = document.createElement('mark');
    mark.textContent = p < text.length ? text[p] : ' ';
    line.appendChild(mark);
    line.appendChild(document.createTextNode(text.slice(p + 1)));
    pre.appendChild(line);
    pre.appendChild(document.createTextNode('\n' + ' '.repeat(p) + '^'));
    pre.dataset.position = String(pos);
    pre.title = 'click to select this character in the input';
    pre.hidden = false;
  }

  function hideCaret() {
    $('mol-caret').hidden = true;
  }

  function clearDrawing(why) {
    const box = $('mol-drawing');
    box.dataset.state = why || 'empty';
    box.innerHTML = '';
    const span = document.createElement('span');
    span.className = 'placeholder';
    span.textContent = why === 'invalid' ? 'no structure: the molecule is not valid' : 'the 2D structure appears here';
    box.appendChild(span);
  }

  function draw() {
    const mol = state.molecule;
    if (!mol) return;
    const box = $('mol-drawing');
    if (!state.rdkit) {
      box.dataset.state = state.rdkitError ? 'nodraw' : 'pending';
      box.textContent = '';
      const span = document.createElement('span');
      span.className = 'placeholder';
      span.textContent = state.rdkitError ? 'drawing unavailable: ' + state.rdkitError : 'loading RDKit.js\u2026';
      box.appendChild(span);
      return; // drawn when RDKit.js has loaded
    }
    // The SMILES as typed keeps the user's atom order; a SELFIES goes through the server's SMILES.
    const candidates = mol.notation === 'smiles' ? [mol.text, mol.canonical] : [mol.canonical];
    let rd = null;
    for (const s of candidates) {
      if (!s) continue;
      try {
        rd = state.rdkit.get_mol(s);
      } catch (_) {
        rd = null;
      }
      if (rd && rd.is_valid()) break;
      if (rd) rd.delete();
      rd = null;
    }
    if (!rd) {
      box.dataset.state = 'nodraw';
      box.textContent = '';
      const span = document.createElement('span');
      span.className = 'placeholder';
      span.textContent = 'RDKit.js cannot draw this molecule (the server accepted it)';
      box.appendChild(span);
      return;
    }
    try {
      const w = Math.max(240, Math.floor(box.clientWidth) - 2);
      const h = Math.max(180, Math.floor(box.clientHeight) - 2);
      const svg = rd.get_svg_with_highlights(
        JSON.stringify({ width: w, height: h, addStereoAnnotation: true, bondLineWidth: 1.5 })
      );
      box.innerHTML = svg; // RDKit's own SVG; atom labels are escaped by RDKit
      box.dataset.state = 'drawn';
      const el = box.querySelector('svg');
      if (el) {
        el.setAttribute('role', 'img');
        el.setAttribute('aria-label', '2D structure of ' + (mol.canonical || mol.text));
      }
    } finally {
      rd.delete();
    }
  }

  async function loadRDKit() {
    if (typeof window.initRDKitModule !== 'function') {
      state.rdkitError = 'RDKit.js did not load';
      draw();
      return;
    }
    try {
      state.rdkit = await window.initRDKitModule({ locateFile: () => '/static/RDKit_minimal.wasm' });
      $('rdkit-version').textContent = state.rdkit.version();
    } catch (e) {
      state.rdkitError = 'RDKit.js failed to start (' + (e && e.message ? e.message : e) + ')';
    }
    draw();
  }

  // ---------------------------------------------------------------- asking

  function updateAsk() {
    const running = state.abort !== null;
    $('ask').disabled = running || !state.model || !state.molecule || !$('question').value.trim();
    $('ask').title = !state.model ? 'no model' : !state.molecule ? 'enter a valid molecule first' : '';
    $('stop').hidden = !running;
  }

  function setAnswerStatus(stateName, text) {
    const el = $('answer-status');
    el.dataset.state = stateName;
    el.textContent = text;
  }

  function showProb(p) {
    const box = $('prob');
    if (typeof p !== 'number' || !Number.isFinite(p)) {
      box.hidden = true;
      return;
    }
    const v = Math.min(1, Math.max(0, p));
    $('prob-fill').style.width = (v * 100).toFixed(1) + '%';
    $('prob-fill').dataset.side = v >= 0.5 ? 'yes' : 'no';
    $('prob-meter').setAttribute('aria-valuenow', v.toFixed(3));
    $('prob-value').textContent = v.toFixed(3) + (v >= 0.5 ? ' \u2192 Yes' : ' \u2192 No');
    box.hidden = false;
  }

  // Data payloads of a server-sent-event stream (fetch + ReadableStream: the request is a POST).
  async function* sseData(body) {
    const reader = body.getReader();
    const decoder = new TextDecoder();
    let buf = '';
    const take = function* (flush) {
      // normalise CR LF / CR line ends; a CR at the very end may be the first half of a CR LF
      buf = buf.replace(/\r\n/g, '\n').replace(/\r(?!$)/g, '\n');
      if (flush) buf = buf.replace(/\r$/, '\n') + '\n\n';
      let i;
      while ((i = buf.indexOf('\n\n')) >= 0) {
        const block = buf.slice(0, i);
        buf = buf.slice(i + 2);
        const data = [];
        for (const line of block.split('\n')) {
          if (line.startsWith('data:')) data.push(line.slice(line[5] === ' ' ? 6 : 5));
        }
        if (data.length) yield data.join('\n');
      }
    };
    try {
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buf += decoder.decode(value, { stream: true });
        yield* take(false);
      }
      buf += decoder.decode();
      yield* take(true);
    } finally {
      reader.releaseLock();
    }
  }

  async function ask() {
    const mol = state.molecule;
    const model = state.model;
    const question = $('question').value.trim();
    if (!mol || !model || !question || state.abort) return;
    clearError();
    const maxTokens = parseInt($('max-tokens').value, 10);
    const temperature = parseFloat($('temperature').value);
    const penalty = parseFloat($('repetition-penalty').value);
    const part =
      mol.notation === 'smiles'
        ? { type: 'molecule', smiles: mol.text }
        : { type: 'molecule', smiles: mol.canonical || mol.text };
    const body = {
      model: model.id,
      messages: [{ role: 'user', content: [part, { type: 'text', text: question }] }],
      stream: true,
      stream_options: { include_usage: true },
      max_tokens: Number.isFinite(maxTokens) && maxTokens > 0 ? maxTokens : 256,
      temperature: Number.isFinite(temperature) && temperature >= 0 ? temperature : 0,
      repetition_penalty: Number.isFinite(penalty) && penalty > 0 ? penalty : 1,
    };
    if (model.yes_no) body.prob_yes = true;

    if (state.current) addHistory(state.current); // the answer on show moves to the history
    state.current = null;
    const ctrl = new AbortController();
    state.abort = ctrl;
    updateAsk();
    const out = $('answer');
    out.textContent = '';
    out.dataset.state = 'streaming';
    showProb(null);
    $('answer-stats').textContent = '';
    const about = $('answer-about');
    about.textContent = '';
    const aboutCode = document.createElement('code');
    aboutCode.textContent = mol.canonical || mol.text;
    about.append(model.id + ' \u00b7 ', aboutCode, ' \u00b7 \u201c' + question + '\u201d');
    about.hidden = false;
    setAnswerStatus('waiting', 'waiting for ' + model.id + '\u2026');

    const t0 = performance.now();
    let tFirst = null;
    let pieces = 0;
    let finish = null;
    let prob = null;
    let usage = null;
    let text = '';
    const stats = () => {
      const secs = (performance.now() - t0) / 1000;
      const n = usage && typeof usage.completion_tokens === 'number' ? usage.completion_tokens : pieces;
      const approx = usage ? '' : '\u2248';
      const decodeSecs = tFirst === null ? 0 : (performance.now() - tFirst) / 1000;
      const rate = n > 1 && decodeSecs > 0 ? ' \u00b7 ' + ((n - 1) / decodeSecs).toFixed(1) + ' tok/s' : '';
      const first = tFirst === null ? '' : ' \u00b7 first token ' + ((tFirst - t0) / 1000).toFixed(2) + ' s';
      return approx + n + ' tokens \u00b7 ' + secs.toFixed(1) + ' s' + first + rate;
    };
    const append = (s) => {
      if (!s) return;
      if (tFirst === null) {
        tFirst = performance.now();
        setAnswerStatus('streaming', 'answering\u2026');
      }
      text += s;
      out.textContent = text;
    };

    let outcome = 'done';
    try {
      let resp;
      try {
        resp = await fetch('/v1/chat/completions', {
          method: 'POST',
          headers: headers('sse'),
          body: JSON.stringify(body),
          signal: ctrl.signal,
        });
      } catch (e) {
        if (e.name === 'AbortError') throw e;
        throw new ApiError(0, 'cannot reach the server (' + e.message + ')', 'network_error');
      }
      if (!resp.ok) throw await readError(resp);
      const ctype = resp.headers.get('content-type') || '';
      if (!ctype.includes('text/event-stream')) {
        // The server answered in one piece.
        const j = await resp.json();
        const c = (j.choices && j.choices[0]) || {};
        append((c.message && c.message.content) || '');
        pieces = text ? 1 : 0;
        finish = c.finish_reason || null;
        if (typeof c.prob_yes === 'number') prob = c.prob_yes;
        usage = j.usage || null;
      } else {
        for await (const data of sseData(resp.body)) {
          if (data.trim() === '[DONE]') break;
          let chunk;
          try {
            chunk = JSON.parse(data);
          } catch (_) {
            throw new Error('the server sent a stream chunk that is not JSON: ' + data.slice(0, 200));
          }
          if (chunk.error) {
            const e = chunk.error;
            throw new ApiError(0, e.message || String(e), e.type, e.code);
          }
          if (chunk.usage) usage = chunk.usage;
          const c = chunk.choices && chunk.choices[0];
          if (!c) continue;
          if (c.delta && typeof c.delta.content === 'string' && c.delta.content) {
            pieces++;
            append(c.delta.content);
            $('answer-stats').textContent = stats();
          }
          if (c.finish_reason) finish = c.finish_reason;
          if (typeof c.prob_yes === 'number') prob = c.prob_yes;
        }
      }
    } catch (e) {
      if (e.name === 'AbortError') {
        outcome = 'stopped';
      } else {
        outcome = 'error';
        showError(e);
      }
    } finally {
      state.abort = null;
      updateAsk();
    }

    out.dataset.state = outcome;
    $('answer-stats').textContent = stats();
    if (outcome === 'done') {
      let msg = 'answer complete';
      if (finish === 'length') msg += ' (cut at max tokens)';
      if (!text) msg = 'the model returned an empty answer';
      setAnswerStatus('done', msg);
      if (model.yes_no && prob === null) {
        setAnswerStatus('done', msg + ' \u00b7 the server sent no p(Yes)');
      }
      showProb(prob);
    } else if (outcome === 'stopped') {
      setAnswerStatus('stopped', 'stopped');
    } else {
      setAnswerStatus('error', 'failed (see the error above)');
    }
    state.current = text ? { model: model.id, molecule: mol.canonical || mol.text, question, answer: text, prob, outcome } : null;
  }

  function addHistory(item) {
    state.history.push(item);
    const li = document.createElement('li');
    const head = document.createElement('div');
    head.className = 'h-head';
    const code = document.createElement('code');
    code.textContent = item.molecule;
    head.append(item.model + ' \u00b7 ', code);
    const q = document.createElement('div');
    q.className = 'h-q';
    q.textContent = item.question;
    const a = document.createElement('div');
    a.className = 'h-a';
    a.textContent =
      item.answer +
      (typeof item.prob === 'number' ? '  [p(Yes) = ' + item.prob.toFixed(3) + ']' : '') +
      (item.outcome === 'stopped' ? '  [stopped]' : '');
    li.append(head, q, a);
    $('history').prepend(li);
    $('history-count').textContent = String(state.history.length);
  }

  // ---------------------------------------------------------------- wiring

  function init() {
    const keyInput = $('api-key');
    keyInput.value = apiKey();
    keyInput.addEventListener('change', () => {
      storageSet(KEY_STORAGE, keyInput.value.trim());
      loadModels();
      if ($('smiles').value.trim()) scheduleCheck();
    });

    $('error-close').addEventListener('click', clearError);
    $('model').addEventListener('change', (e) => selectModel(e.target.value));
    $('smiles').addEventListener('input', scheduleCheck);
    $('notation').addEventListener('change', scheduleCheck);
    $('mol-caret').addEventListener('click', () => {
      const pos = parseInt($('mol-caret').dataset.position, 10);
      const input = $('smiles');
      const start = input.value.length - input.value.trimStart().length; // we sent it trimmed
      input.focus();
      input.setSelectionRange(start + pos, start + pos + 1);
    });
    $('question').addEventListener('input', () => {
      if ($('question').value !== state.lastPreset) state.lastPreset = null;
      updateAsk();
    });
    $('question').addEventListener('keydown', (e) => {
      if (e.key === 'Enter' && !e.shiftKey) {
        e.preventDefault();
        if (!$('ask').disabled) ask();
      }
    });
    $('smiles').addEventListener('keydown', (e) => {
      if (e.key === 'Enter' && !$('ask').disabled) ask();
    });
    $('ask').addEventListener('click', ask);
    $('stop').addEventListener('click', () => state.abort && state.abort.abort());

    const ex = $('examples');
    ex.append('examples: ');
    for (const [name, smi] of EXAMPLES) {
      const b = document.createElement('button');
      b.type = 'button';
      b.className = 'link';
      b.textContent = name;
      b.title = smi;
      b.addEventListener('click', () => {
        $('notation').value = 'smiles';
        $('smiles').value = smi;
        scheduleCheck();
      });
      ex.append(b, ' ');
    }

    let redrawTimer = null;
    window.addEventListener('resize', () => {
      clearTimeout(redrawTimer);
      redrawTimer = setTimeout(draw, 150);
    });

    const params = new URLSearchParams(location.search);
    if (params.get('selfies')) {
      $('notation').value = 'selfies';
      $('smiles').value = params.get('selfies');
    } else if (params.get('smiles')) {
      $('smiles').value = params.get('smiles');
    }

    setQuestion(DEFAULT_PRESETS[0]);
    renderPresets();
    updateAsk();
    loadRDKit();
    loadModels().then(() => {
      if ($('smiles').value.trim()) scheduleCheck();
    });
  }

  init();
})();

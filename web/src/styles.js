// The widget's styles, inside its shadow root: nothing leaks in or out. Themable from
// the host page with CSS custom properties on the widget element (they inherit into
// the shadow root), e.g.  #voxline-widget { --voxline-accent: #0b6e4f; }
export const STYLES = `
:host { all: initial; }
.vx {
  --accent: var(--voxline-accent, #2f5bea);
  --accent-text: var(--voxline-accent-text, #ffffff);
  --bg: var(--voxline-background, #ffffff);
  --text: var(--voxline-text, #1b2130);
  --muted: var(--voxline-muted, #667085);
  --agent-bubble: var(--voxline-agent-bubble, #f1f3f8);
  --user-bubble: var(--voxline-user-bubble, var(--accent));
  --user-text: var(--voxline-user-text, var(--accent-text));
  --danger: var(--voxline-danger, #d92d20);
  --radius: var(--voxline-radius, 18px);
  --font: var(--voxline-font, system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif);
  position: fixed; bottom: var(--voxline-offset, 24px); right: var(--voxline-offset, 24px);
  z-index: var(--voxline-z-index, 2147483000);
  font: 15px/1.45 var(--font); color: var(--text);
  display: flex; flex-direction: column; align-items: flex-end; gap: 12px;
}
.vx.left { right: auto; left: var(--voxline-offset, 24px); align-items: flex-start; }
button { font: inherit; cursor: pointer; border: 0; }
button:focus-visible { outline: 3px solid var(--voxline-focus, #ffb020); outline-offset: 2px; }
.launcher {
  display: inline-flex; align-items: center; gap: 10px; height: 56px; padding: 0 22px 0 18px;
  border-radius: 28px; background: var(--accent); color: var(--accent-text);
  font-weight: 600; font-size: 15.5px; letter-spacing: .01em;
  box-shadow: 0 10px 30px -8px rgba(20, 30, 60, .45), 0 2px 6px rgba(20, 30, 60, .18);
  transition: transform .15s ease, box-shadow .15s ease;
}
.launcher:hover { transform: translateY(-1px); box-shadow: 0 14px 34px -8px rgba(20, 30, 60, .5), 0 2px 6px rgba(20,30,60,.2); }
.launcher[hidden] { display: none; }
.launcher svg { width: 22px; height: 22px; flex: none; }
.panel {
  width: min(360px, calc(100vw - 32px)); background: var(--bg); border-radius: var(--radius);
  box-shadow: 0 24px 60px -12px rgba(20, 30, 60, .35), 0 2px 10px rgba(20, 30, 60, .12);
  overflow: hidden; display: flex; flex-direction: column;
  border: 1px solid rgba(20, 30, 60, .06);
}
.panel[hidden] { display: none; }
.head { display: flex; align-items: center; gap: 12px; padding: 16px 16px 14px 18px;
  border-bottom: 1px solid rgba(20, 30, 60, .07); }
.orb { position: relative; width: 40px; height: 40px; flex: none; border-radius: 50%;
  background: var(--accent); color: var(--accent-text); display: grid; place-items: center; }
.orb svg { width: 20px; height: 20px; }
.orb::before, .orb::after { content: ""; position: absolute; inset: 0; border-radius: 50%;
  border: 2px solid var(--accent); opacity: 0; }
.vx[data-state="speaking"] .orb::before { animation: ring 1.4s ease-out infinite; }
.vx[data-state="speaking"] .orb::after { animation: ring 1.4s ease-out .7s infinite; }
.vx[data-state="connecting"] .orb { animation: pulse 1.1s ease-in-out infinite; }
.vx[data-state="error"] .orb { background: var(--danger); }
@keyframes ring { from { transform: scale(1); opacity: .55; } to { transform: scale(1.75); opacity: 0; } }
@keyframes pulse { 50% { opacity: .55; } }
@media (prefers-reduced-motion: reduce) { .orb::before, .orb::after, .orb { animation: none !important; } }
.who { flex: 1; min-width: 0; }
.title { font-weight: 650; font-size: 15.5px; white-space: nowrap; overflow: hidden; text-overflow: ellipsis; }
.status { font-size: 13px; color: var(--muted); display: flex; align-items: center; gap: 6px; }
.dot { width: 8px; height: 8px; border-radius: 50%; background: #98a2b3; }
.vx[data-state="listening"] .dot { background: #12b76a; }
.vx[data-state="speaking"] .dot { background: var(--accent); }
.vx[data-state="connecting"] .dot { background: #f79009; }
.vx[data-state="error"] .dot { background: var(--danger); }
.close { width: 34px; height: 34px; border-radius: 50%; background: transparent; color: var(--muted);
  display: grid; place-items: center; }
.close:hover { background: rgba(20, 30, 60, .06); }
.close svg { width: 18px; height: 18px; }
.captions { height: 240px; overflow-y: auto; padding: 14px 16px; display: flex; flex-direction: column;
  gap: 8px; scroll-behavior: smooth; }
.empty { margin: auto; text-align: center; color: var(--muted); font-size: 14px; max-width: 240px; }
.line { margin: 0; max-width: 82%; padding: 8px 12px; border-radius: 14px; white-space: pre-wrap; word-wrap: break-word; }
.line.agent { align-self: flex-start; background: var(--agent-bubble); border-bottom-left-radius: 4px; }
.line.visitor { align-self: flex-end; background: var(--user-bubble); color: var(--user-text);
  border-bottom-right-radius: 4px; }
.line.interim { opacity: .7; }
.line.pending { padding: 12px 14px; }
.dots { display: inline-flex; gap: 4px; }
.dots i { width: 6px; height: 6px; border-radius: 50%; background: var(--muted); opacity: .35;
  animation: blink 1.2s infinite ease-in-out; }
.dots i:nth-child(2) { animation-delay: .2s; }
.dots i:nth-child(3) { animation-delay: .4s; }
@keyframes blink { 40% { opacity: 1; transform: translateY(-2px); } }
@media (prefers-reduced-motion: reduce) { .dots i { animation: none; opacity: .7; } }
.line.interrupted::after { content: " — interrupted"; color: var(--muted); font-size: 12.5px; font-style: italic; }
.notice { margin: 0 16px 12px; padding: 10px 12px; border-radius: 12px; font-size: 14px;
  background: #fef3f2; color: #912018; border: 1px solid #fecdca; }
.notice[hidden] { display: none; }
.notice.info { background: #f2f4f7; color: #344054; border-color: #e4e7ec; }
.handoff { margin: 0 16px 12px; padding: 10px 12px; border-radius: 12px; font-size: 14px; font-weight: 600;
  background: var(--voxline-handoff-background, #ecfdf3); color: var(--voxline-handoff-text, #05603a);
  border: 1px solid var(--voxline-handoff-border, #abefc6); }
.handoff[hidden] { display: none; }
.bar { display: flex; gap: 10px; padding: 12px 16px 16px; }
.bar button { flex: 1; height: 44px; border-radius: 12px; display: inline-flex; align-items: center;
  justify-content: center; gap: 8px; font-weight: 600; font-size: 14.5px; }
.bar svg { width: 18px; height: 18px; }
.mute { background: #f2f4f7; color: var(--text); }
.mute[aria-pressed="true"] { background: #fff4e5; color: #b54708; }
.end { background: var(--danger); color: #fff; }
.retry { background: var(--accent); color: var(--accent-text); }
.bar button[hidden] { display: none; }
.brand { text-align: center; font-size: 11.5px; color: #98a2b3; padding: 0 0 10px; }
`;

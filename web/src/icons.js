// Inline SVG icons (stroke icons, 24x24), aria-hidden: every control has a text label.
const svg = (body) => `<svg viewBox="0 0 24 24" fill="none" stroke="currentColor" stroke-width="2"
  stroke-linecap="round" stroke-linejoin="round" aria-hidden="true" focusable="false">${body}</svg>`;

export const ICONS = {
  mic: svg('<rect x="9" y="3" width="6" height="11" rx="3"/><path d="M5 11a7 7 0 0 0 14 0"/><path d="M12 18v3"/>'),
  micOff: svg('<path d="M3 3l18 18"/><path d="M9 9v2a3 3 0 0 0 5.1 2.1"/><path d="M15 10V6a3 3 0 0 0-5.7-1.3"/>'
    + '<path d="M5 11a7 7 0 0 0 11.2 5.6"/><path d="M19 11a7 7 0 0 1-.6 2.8"/><path d="M12 18v3"/>'),
  phoneOff: svg('<path d="M10.7 13.3a16 16 0 0 1-3-3.6l1.6-1.6a1.5 1.5 0 0 0 .3-1.6L8.4 3.9A1.5 1.5 0 0 0 6.7 3H4.5'
    + 'A1.5 1.5 0 0 0 3 4.6 18 18 0 0 0 8 16"/><path d="M21 3 3 21"/><path d="M14 17.7a16 16 0 0 0 5.4 2.3 1.5 1.5 0 0 0 '
    + '1.6-1.5v-2.2a1.5 1.5 0 0 0-.9-1.4l-2.6-1.1a1.5 1.5 0 0 0-1.6.3l-.9.9"/>'),
  close: svg('<path d="M6 6l12 12M18 6 6 18"/>'),
  retry: svg('<path d="M3 12a9 9 0 0 1 15.5-6.3L21 8"/><path d="M21 3v5h-5"/><path d="M21 12a9 9 0 0 1-15.5 6.3L3 16"/>'
    + '<path d="M3 21v-5h5"/>'),
  wave: svg('<path d="M4 10v4M8 7v10M12 4v16M16 7v10M20 10v4"/>'),
};

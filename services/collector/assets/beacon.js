/*! Beacon tracker, Plausible-compatible, cookieless. Attributes: data-domain, data-api, data-allow-automation (track even
 when navigator.webdriver: our browser tests). Opt-out: localStorage.beacon_ignore='true' */
(function(w,d){
var L=w.location,N=w.navigator,H=w.history,E=d.documentElement,V='visibilityState',
s=d.currentScript||E,A=function(k){return s.getAttribute('data-'+k)},
api=A('api')||new URL(s.src||'/',L).origin+'/api/event',dom=A('domain')||L.hostname,
c,P,S,a,t,h,m,l;
function on(o,e,f){o.addEventListener(e,f)}
function off(){
 if(L.protocol=='file:'||N.webdriver&&A('allow-automation')==null)return 1;
 try{return localStorage.beacon_ignore=='true'||localStorage.plausible_ignore=='true'}catch(e){}
}
function send(p,f){
 var b=JSON.stringify(p);
 w.fetch?fetch(api,{method:'POST',body:b,headers:{'Content-Type':'text/plain'},keepalive:!0}).then(function(r){f&&f({status:r.status})},function(e){f&&f({error:e})})
 :N.sendBeacon(api,b)&&f&&f({});
}
function depth(){var v=w.innerHeight,y;h=Math.max(E.scrollHeight,E.offsetHeight);y=h>v?pageYOffset+v:h;if(y>m)m=y}
function eng(){return a+(t&&Date.now()-t)}
// engagement: sd = max scroll %, e = engaged ms since the last one; sent only if one is new
function flush(){
 if(!c)return;depth();
 var e=eng(),sd=Math.min(100,Math.round(m/h*100))||0;
 if(e>0||sd>S){S=sd;a=0;t=t&&Date.now();send({n:'engagement',u:c,d:dom,p:P,sd:sd,e:e})}
}
function track(n,o){
 o=o||{};var v=n=='pageview',p={n:n,u:L.href,d:dom,r:d.referrer||null};
 if(v)flush();
 if(off()){if(v)c=0;return o.callback&&o.callback()}
 if(o.props)p.p=o.props;
 if(o.interactive===!1)p.i=!1;
 if(v){c=p.u;P=p.p;S=-1;a=m=0;t=Date.now();depth()}
 send(p,o.callback);
}
function page(f){if(f||l!=L.pathname){l=L.pathname;track('pageview')}}
function wrap(k){var f=H[k];H[k]=function(){var r=f.apply(this,arguments);page();return r}}
function vis(){if(d[V]=='visible'&&d.hasFocus())t=t||Date.now();else{a=eng();t=0;d[V]=='hidden'&&flush()}}
function click(e){
 var x=e.target.closest&&e.target.closest('a[href]');
 if(!x||e.type=='auxclick'&&e.button!=1)return;
 if(x.host&&x.host!=L.host)track('Outbound Link: Click',{props:{url:x.href}});
 else if(/\.(pdf|xlsx|docx|txt|rtf|csv|exe|key|pps|pptx?|7z|pkg|rar|gz|zip|avi|mov|mp4|mpeg|wmv|midi|mp3|wav|wma|dmg)$/i.test(x.pathname))
  track('File Download',{props:{url:x.href.split(/[?#]/)[0]}});
}
var q=(w.beacon||{}).q||[],i=0;
w.beacon=track;w.plausible=w.plausible||track;
on(d,'scroll',depth);on(d,'visibilitychange',vis);on(w,'blur',vis);on(w,'focus',vis);on(d,'click',click);on(d,'auxclick',click);
wrap('pushState');wrap('replaceState');on(w,'popstate',function(){page()});
page(1);
for(;i<q.length;)track.apply(w,q[i++]);
})(window,document);
